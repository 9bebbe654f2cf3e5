//! The compiled runtime route table: an immutable snapshot of everything the data plane needs to
//! route one request, built once per reload (by the translator from the resource model, or by hand
//! in tests) and never mutated afterwards.
//!
//! The types mirror the Envoy route configuration that Gloo (ingress) and App Mesh (sidecar)
//! produce, reduced to the features colormesh uses:
//!
//! ```text
//! RouteTable
//! ├── VirtualHost { name, domains, routes }     selected by the request's authority
//! │   └── Route { name, matcher, action }       first match in list order wins
//! │       ├── RouteMatcher                      path + case + headers + query + methods
//! │       └── RouteAction
//! │           ├── Forward(ForwardAction)        weighted clusters, rewrite, timeout, retry, headers
//! │           ├── Respond { status, body }      direct response
//! │           └── Redirect(Redirect)            3xx with a `location` built from the request
//! └── Fallback                                  NotFound (404) or Passthrough (sidecar ALLOW_ALL)
//! ```
//!
//! Everything that is expensive to prepare is prepared at construction: regexes are compiled
//! (anchored to match the whole subject, as Envoy's `safe_regex` does), virtual host domains are
//! indexed for Envoy's selection order, weighted totals are summed. Lookup (see [`RouteTable::route`])
//! takes no locks and allocates only when a case-insensitive matcher needs a lowered path.
//!
//! The table is pure data: it holds no counters. What changes per request (the round-robin
//! position over a cluster's endpoints) is kept by whoever serves the table, per installed table,
//! and passed in as a turn number ([`Cluster::endpoint`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// Errors found while constructing a table; the translator reports them against the resource
/// that produced the offending value.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A regex (path, header, query parameter or rewrite pattern) does not compile.
    #[error("invalid regex {pattern:?}: {source}")]
    InvalidRegex {
        /// The pattern as written in the configuration.
        pattern: String,
        /// The regex crate's explanation.
        #[source]
        source: Box<regex::Error>,
    },
    /// The weights of a weighted destination list add up to zero (Envoy rejects this too).
    #[error(
        "weighted destinations require a total weight >= 1 (got 0 over {destinations} destinations)"
    )]
    ZeroTotalWeight {
        /// How many destinations were listed.
        destinations: usize,
    },
    /// The weights overflow `u32` when added up (Envoy's limit as well).
    #[error("weighted destinations add up to more than {max}", max = u32::MAX)]
    TotalWeightOverflow,
    /// Two virtual hosts of one table list the same domain; Envoy rejects such a route configuration.
    #[error("domain {domain:?} is listed by virtual hosts {first:?} and {second:?}")]
    DuplicateDomain {
        /// The domain, lowercased.
        domain: String,
        /// The virtual host that listed it first.
        first: String,
        /// The virtual host that listed it again.
        second: String,
    },
    /// A domain with a wildcard anywhere but a leading `*` or a trailing `*`, or a lone `*` mixed with text.
    #[error("domain {domain:?} of virtual host {virtual_host:?} has a misplaced wildcard")]
    InvalidDomain {
        /// The offending domain.
        domain: String,
        /// The virtual host listing it.
        virtual_host: String,
    },
}

/// The whole runtime routing configuration of one proxy.
///
/// Build it with [`RouteTable::new`], which indexes the virtual hosts' domains.
#[derive(Debug)]
pub struct RouteTable {
    virtual_hosts: Vec<VirtualHost>,
    fallback: Fallback,
    domains: DomainIndex,
}

/// What happens to a request whose authority selects no virtual host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// Answer 404 with an empty body (Envoy without a matching virtual host; App Mesh egress DROP_ALL).
    NotFound,
    /// Forward to the request's own authority, resolved at request time (App Mesh egress ALLOW_ALL).
    Passthrough {
        /// How long to wait for the upstream's response headers; `None` disables the timeout.
        timeout: Option<Duration>,
    },
}

/// A named group of routes selected by the request's authority.
#[derive(Debug)]
pub struct VirtualHost {
    /// Name used in config dumps and metrics (e.g. `gloo-system_colorgateway`).
    pub name: String,
    /// Envoy domain patterns: `example.com`, `example.com:80`, `*.example.com`, `example.*`, `*`.
    /// Matching is case-insensitive.
    pub domains: Vec<String>,
    /// Routes in evaluation order: the first one whose matcher matches wins.
    pub routes: Vec<Route>,
}

/// One route: a matcher and what to do with matching requests.
#[derive(Debug)]
pub struct Route {
    /// Name used in config dumps and metrics; unique within the table by convention
    /// (e.g. `gloo-system/colorgateway/0`).
    pub name: String,
    /// Which requests this route takes.
    pub matcher: RouteMatcher,
    /// What it does with them.
    pub action: RouteAction,
}

/// Conditions a request must meet, all of them, for a route to match.
#[derive(Debug)]
pub struct RouteMatcher {
    /// Condition on the path (without the query string).
    pub path: PathMatcher,
    /// Whether prefix and exact path matching is case-sensitive (Gloo's default: true).
    /// Like Envoy, this does not apply to [`PathMatcher::Regex`]; put `(?i)` in the pattern instead.
    pub case_sensitive: bool,
    /// Every header matcher must match.
    pub headers: Vec<HeaderMatcher>,
    /// Every query parameter matcher must match.
    pub query_parameters: Vec<QueryParameterMatcher>,
    /// Allowed methods; empty means any method.
    pub methods: Vec<Method>,
}

impl RouteMatcher {
    /// The matcher of a route with no conditions: Gloo's empty matcher list, a `/` prefix.
    pub fn any() -> Self {
        Self::path(PathMatcher::Prefix("/".to_owned()))
    }

    /// A matcher with only a path condition, case-sensitive.
    pub fn path(path: PathMatcher) -> Self {
        Self {
            path,
            case_sensitive: true,
            headers: Vec::new(),
            query_parameters: Vec::new(),
            methods: Vec::new(),
        }
    }
}

/// Condition on the request path (the query string is never part of it).
#[derive(Debug)]
pub enum PathMatcher {
    /// Plain string prefix: `/appmesh/color` matches `/appmesh/colorful` too, as in Envoy.
    Prefix(String),
    /// The whole path.
    Exact(String),
    /// A regex that must match the whole path.
    Regex(FullRegex),
    /// Element-wise prefix (Gateway API `PathPrefix`, Envoy `path_separated_prefix`): the prefix
    /// has no trailing `/` and matches a path equal to it or continuing with `/`, so
    /// `/appmesh/color` matches `/appmesh/color/x` but not `/appmesh/colorful`. The lone `/`
    /// matches every path (Envoy cannot express it as `path_separated_prefix`; it is `prefix: "/"`).
    PathSeparatedPrefix(String),
}

/// A regex that must match its whole subject, as Envoy's `safe_regex` matchers do.
///
/// Compiled once, anchored as `^(?:pattern)$`; the original pattern is kept for config dumps.
/// The unanchored form serves `regex_rewrite`, which replaces every match anywhere in the path.
#[derive(Clone)]
pub struct FullRegex {
    pattern: String,
    anchored: regex::Regex,
    unanchored: regex::Regex,
}

impl FullRegex {
    /// Compiles `pattern` so that it matches whole subjects only.
    pub fn new(pattern: &str) -> Result<Self, TableError> {
        let invalid = |source| TableError::InvalidRegex {
            pattern: pattern.to_owned(),
            source: Box::new(source),
        };
        let anchored = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(invalid)?;
        let unanchored = regex::Regex::new(pattern).map_err(invalid)?;
        Ok(Self {
            pattern: pattern.to_owned(),
            anchored,
            unanchored,
        })
    }

    /// The pattern as configured (without the anchors added here).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `subject` matches.
    pub fn is_full_match(&self, subject: &str) -> bool {
        self.anchored.is_match(subject)
    }
}

impl fmt::Debug for FullRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FullRegex").field(&self.pattern).finish()
    }
}

/// Condition on one request header.
#[derive(Debug)]
pub struct HeaderMatcher {
    /// The header's name (the `Host` header is matched as sent; there is no `:authority` alias).
    pub name: HeaderName,
    /// Condition on the value. Several values of one header are joined with `,` first, as Envoy does.
    pub value: ValueMatcher,
    /// Inverts the result for a header that is present. An absent header fails every matcher
    /// except an inverted [`ValueMatcher::Present`] ("the header must not be there"), as in Envoy
    /// (`HeaderUtility::matchHeaders` without `treat_missing_header_as_empty`).
    pub invert: bool,
}

/// Condition on a header or query parameter value.
#[derive(Debug)]
pub enum ValueMatcher {
    /// The header or parameter exists, whatever its value.
    Present,
    /// The whole value.
    Exact(String),
    /// A prefix of the value.
    Prefix(String),
    /// A suffix of the value.
    Suffix(String),
    /// A regex that matches the whole value.
    Regex(FullRegex),
    /// The value parses as an integer in `start..end` (start inclusive, end exclusive).
    Range {
        /// Inclusive lower bound.
        start: i64,
        /// Exclusive upper bound.
        end: i64,
    },
}

impl ValueMatcher {
    /// Whether a present value matches (absent values are handled by the caller).
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Present => true,
            Self::Exact(expected) => value == expected,
            Self::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Self::Suffix(suffix) => value.ends_with(suffix.as_str()),
            Self::Regex(regex) => regex.is_full_match(value),
            Self::Range { start, end } => value
                .parse::<i64>()
                .is_ok_and(|number| (*start..*end).contains(&number)),
        }
    }
}

/// Condition on one query parameter, compared on its raw (still percent-encoded) value.
/// When a parameter is repeated, the first occurrence is the one compared.
#[derive(Debug)]
pub struct QueryParameterMatcher {
    /// The parameter's name, compared exactly.
    pub name: String,
    /// Condition on its value; an absent parameter never matches.
    pub value: ValueMatcher,
}

/// What a route does with a matching request.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "routes live in a Vec built once per reload; boxing would add a pointer chase per request"
)]
pub enum RouteAction {
    /// Proxy the request to one of the weighted destinations.
    Forward(ForwardAction),
    /// Answer directly (Gloo `directResponseAction`, or a route replaced because it is invalid).
    Respond {
        /// The status to answer with.
        status: StatusCode,
        /// The body to answer with (may be empty).
        body: Bytes,
    },
    /// Answer with a redirect (Gateway API `RequestRedirect`, Envoy's route `redirect` action).
    Redirect(Redirect),
}

/// A redirect answered by the proxy itself: `status`, a `location` header built by
/// [`Redirect::location`] and an empty body, as Envoy's `redirect` route action answers.
///
/// The fields are Envoy's `RedirectAction`, so that both data planes build the same `location`;
/// Gateway API rules (such as leaving out a well-known port) are the translator's to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// Replaces the request's scheme (Envoy `scheme_redirect`); `None` keeps it.
    pub scheme: Option<String>,
    /// Replaces the request's host *and port* (Envoy `host_redirect`): the request's port is
    /// never kept with a new hostname. `None` keeps the request's host, see [`Redirect::location`].
    pub hostname: Option<String>,
    /// Appended as `:port` whatever the scheme, 80 and 443 included (Envoy `port_redirect`);
    /// `None` adds no port of its own.
    pub port: Option<u16>,
    /// What becomes of the path; the query is kept in every case.
    pub path: RedirectPath,
    /// The redirect's status: 301 or 302 for Gateway API (Envoy also knows 303, 307 and 308).
    pub status: StatusCode,
}

/// The path of a [`Redirect`]'s `location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectPath {
    /// The request's path (Envoy: no path specifier).
    Keep,
    /// This path (Envoy `path_redirect`); the request's query is appended unless this path has a
    /// query of its own.
    FullPath(String),
    /// The request's path with the part matched by the route's
    /// [`PathMatcher::PathSeparatedPrefix`] replaced, exactly as
    /// [`PathRewrite::ReplacePrefixMatch`] rewrites it.
    ReplacePrefixMatch(String),
}

/// What [`Redirect::location`] needs of the request.
#[derive(Debug, Clone, Copy)]
pub struct RedirectRequest<'req> {
    /// The request's scheme as Envoy sees it (`:scheme`, which is also its `x-forwarded-proto`):
    /// the absolute-form URI's, else a valid `x-forwarded-proto` sent by the client, else `http`.
    pub scheme: &'req str,
    /// The request's `Host` (authority), with its port if it has one.
    pub host: &'req str,
    /// The path, without the query string.
    pub path: &'req str,
    /// The raw query string, without the `?`.
    pub query: Option<&'req str>,
}

impl Redirect {
    /// The `location` Envoy answers for `request` (`Http::Utility::newUri`):
    /// `scheme://host[:port]path[?query]` where
    /// - the scheme is [`Redirect::scheme`] or the request's;
    /// - the host is [`Redirect::hostname`] (the request's port dropped), else the request's
    ///   `Host`, whose port is dropped when [`Redirect::port`] is set, or when the scheme changes
    ///   and the request's port is its old scheme's default (`:80` for http, `:443` for https):
    ///   `http://example.com:80/` redirected to https gives `https://example.com/`, while
    ///   `example.com:8080` keeps its port;
    /// - `:port` follows when [`Redirect::port`] is set;
    /// - the path is [`Redirect::path`]'s (with a `/` put in front if it lacks one) and the
    ///   request's query follows it.
    pub fn location(&self, matcher: &PathMatcher, request: &RedirectRequest<'_>) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(request.scheme);
        let port = self.port.map(|port| format!(":{port}")).unwrap_or_default();
        let host = match &self.hostname {
            Some(hostname) => hostname.as_str(),
            None => {
                request_host_for_redirect(request.host, request.scheme, scheme, !port.is_empty())
            }
        };
        let path_and_query = match &self.path {
            RedirectPath::Keep => with_query(request.path.to_owned(), request.query),
            RedirectPath::FullPath(path) if path.contains('?') => path.clone(),
            RedirectPath::FullPath(path) => with_query(path.clone(), request.query),
            RedirectPath::ReplacePrefixMatch(replacement) => with_query(
                replace_prefix_match(replacement, matcher, request.path),
                request.query,
            ),
        };
        let slash = if path_and_query.starts_with('/') {
            ""
        } else {
            "/"
        };
        format!("{scheme}://{host}{port}{slash}{path_and_query}")
    }
}

/// The request's host as Envoy's redirect keeps it (`processRequestHost`): without its port when
/// the redirect sets a port, or when the scheme changes and the port is the default of the
/// request's scheme. IPv6 literals (`[::1]:8080`) keep their brackets.
fn request_host_for_redirect<'h>(
    host: &'h str,
    request_scheme: &str,
    new_scheme: &str,
    new_port: bool,
) -> &'h str {
    let port_start = if host.starts_with('[') {
        host.rfind("]:").map(|bracket| bracket + 1)
    } else {
        host.rfind(':')
    };
    let Some(port_start) = port_start else {
        return host;
    };
    let port = &host[port_start..];
    let default_port_of_old_scheme = (request_scheme.eq_ignore_ascii_case("https")
        && port == ":443")
        || (request_scheme.eq_ignore_ascii_case("http") && port == ":80");
    if new_port || (new_scheme != request_scheme && default_port_of_old_scheme) {
        &host[..port_start]
    } else {
        host
    }
}

fn with_query(mut path: String, query: Option<&str>) -> String {
    if let Some(query) = query {
        path.push('?');
        path.push_str(query);
    }
    path
}

/// Gateway API's `ReplacePrefixMatch`, element-wise, on a path `matcher` matched:
/// - after a [`PathMatcher::PathSeparatedPrefix`] `P`, the `P` part is replaced; a trailing `/`
///   of the replacement is dropped, and a replacement of `/` (or empty) leaves one `/` before
///   the rest: `/foo/bar` with `/foo` → `/xyz` gives `/xyz/bar`, with `/xyz/` too, with `/` gives
///   `/bar`; `/foo` gives `/xyz` and `/`. Slashes right after `P` are collapsed into that one
///   `/` in the `/` case only, as Envoy Gateway's `^P/*` → `/` regex rewrite does;
/// - after an exact matcher, the whole path is the replacement;
/// - after a plain [`PathMatcher::Prefix`] or a regex, it is Envoy's `prefix_rewrite`.
fn replace_prefix_match(replacement: &str, matcher: &PathMatcher, path: &str) -> String {
    let prefix = match matcher {
        PathMatcher::PathSeparatedPrefix(prefix) => prefix,
        PathMatcher::Exact(_) => return replacement.to_owned(),
        PathMatcher::Prefix(_) | PathMatcher::Regex(_) => {
            return prefix_rewrite(replacement, matcher, path);
        }
    };
    // The matched part: the prefix, or nothing for the lone `/` (the rest keeps its slash).
    let matched_len = if prefix == "/" {
        0
    } else {
        prefix.len().min(path.len())
    };
    let rest = &path[matched_len..];
    let trimmed = replacement.trim_end_matches('/');
    let mut rewritten = String::with_capacity(replacement.len() + rest.len() + 1);
    if trimmed.is_empty() {
        rewritten.push('/');
        rewritten.push_str(rest.trim_start_matches('/'));
    } else {
        rewritten.push_str(trimmed);
        if prefix == "/" && !rest.starts_with('/') {
            rewritten.push('/');
        }
        rewritten.push_str(rest);
    }
    rewritten
}

/// Envoy's `prefix_rewrite`: the part the route's prefix matched (the whole path for other
/// matchers) becomes `replacement`, the rest is kept verbatim.
fn prefix_rewrite(replacement: &str, matcher: &PathMatcher, path: &str) -> String {
    let matched_len = match matcher {
        PathMatcher::Prefix(prefix) | PathMatcher::PathSeparatedPrefix(prefix) => {
            prefix.len().min(path.len())
        }
        PathMatcher::Exact(_) | PathMatcher::Regex(_) => path.len(),
    };
    let mut rewritten = String::with_capacity(replacement.len() + path.len());
    rewritten.push_str(replacement);
    rewritten.push_str(&path[matched_len..]);
    rewritten
}

/// How a request is proxied.
#[derive(Debug)]
pub struct ForwardAction {
    /// Where to send it; picked per request (and again per retry).
    pub destinations: WeightedClusters,
    /// How to rewrite the path before sending it.
    pub rewrite: PathRewrite,
    /// Whole-request timeout up to the upstream's response headers (Gloo's default 15 s is
    /// applied by the translator); `None` disables it. Expiry answers 504 `upstream request timeout`.
    pub timeout: Option<Duration>,
    /// Retry policy; `None` means a single try.
    pub retry: Option<RetryPolicy>,
    /// Edits applied to the request sent upstream.
    pub request_headers: HeaderEdits,
    /// Edits applied to the response sent downstream.
    pub response_headers: HeaderEdits,
    /// Replaces the `Host` sent upstream (Gateway API `URLRewrite` hostname, Envoy
    /// `host_rewrite_literal`); `None` sends it as received. Routing still uses the received one.
    pub host_rewrite: Option<String>,
}

/// Path rewriting before a request is forwarded. The query string is always kept.
#[derive(Debug)]
pub enum PathRewrite {
    /// Send the path as received.
    None,
    /// Replace the part of the path matched by the route's [`PathMatcher::Prefix`] (or the whole
    /// path for exact and regex matchers) with this string, keeping the rest verbatim:
    /// prefix `/appmesh` + rewrite `/` turns `/appmesh/color` into `//color`, exactly like Envoy.
    Prefix(String),
    /// Replace every non-overlapping match of `pattern` in the path with `substitution`
    /// (`\1`-style groups), as Envoy's `regex_rewrite` does (RE2 `GlobalReplace`): pattern `one`
    /// with `two` turns `/xxx/one/yyy/one/zzz` into `/xxx/two/yyy/two/zzz`. A path the pattern does
    /// not match is left unchanged.
    Regex {
        /// The pattern, searched anywhere in the path (anchor it with `^...$` to rewrite whole paths).
        pattern: FullRegex,
        /// The replacement; `\N` refers to capture group N.
        substitution: String,
    },
    /// Gateway API `ReplacePrefixMatch`, element-wise, for routes with a
    /// [`PathMatcher::PathSeparatedPrefix`] (after an exact matcher it replaces the whole path):
    /// prefix `/foo` with `/xyz` (or `/xyz/`) turns `/foo/bar` into `/xyz/bar` and `/foo` into
    /// `/xyz`; with `/` it turns `/foo/bar` into `/bar` and `/foo` into `/`.
    ReplacePrefixMatch(String),
    /// Gateway API `ReplaceFullPath`: the whole path becomes this one.
    FullPath(String),
}

/// Weighted destination clusters, picked independently per request as Envoy does:
/// `random % total`, then walk the intervals `[0, w1), [w1, w1 + w2), ...`.
#[derive(Debug)]
pub struct WeightedClusters {
    entries: Vec<WeightedEntry>,
    total: u32,
}

#[derive(Debug)]
struct WeightedEntry {
    cluster: Arc<Cluster>,
    weight: u32,
    /// Exclusive upper end of this entry's interval.
    upper: u32,
}

impl WeightedClusters {
    /// Builds the distribution. Weight 0 is allowed and never picked; a total of 0 is an error.
    pub fn new(destinations: Vec<(Arc<Cluster>, u32)>) -> Result<Self, TableError> {
        let count = destinations.len();
        let mut total: u32 = 0;
        let mut entries = Vec::with_capacity(count);
        for (cluster, weight) in destinations {
            total = total
                .checked_add(weight)
                .ok_or(TableError::TotalWeightOverflow)?;
            entries.push(WeightedEntry {
                cluster,
                weight,
                upper: total,
            });
        }
        if total == 0 {
            return Err(TableError::ZeroTotalWeight {
                destinations: count,
            });
        }
        Ok(Self { entries, total })
    }

    /// A single destination taking all traffic.
    pub fn single(cluster: Arc<Cluster>) -> Self {
        Self {
            entries: vec![WeightedEntry {
                cluster,
                weight: 1,
                upper: 1,
            }],
            total: 1,
        }
    }

    /// Picks a destination from a uniformly random `u64`.
    pub fn pick(&self, random: u64) -> &Arc<Cluster> {
        &self.entries[self.pick_index(random)].cluster
    }

    /// The index (into [`Self::iter`]) of the destination `random` selects.
    pub fn pick_index(&self, random: u64) -> usize {
        let selected = (random % u64::from(self.total)) as u32;
        // `upper` is strictly increasing over non-zero weights, so the first entry whose interval
        // ends past `selected` is the pick; zero-weight entries have empty intervals and are skipped.
        self.entries
            .partition_point(|entry| entry.upper <= selected)
    }

    /// The sum of the weights.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// The destination at `index` (as [`Self::pick_index`] returns) with its weight.
    pub fn get(&self, index: usize) -> Option<(&Arc<Cluster>, u32)> {
        self.entries
            .get(index)
            .map(|entry| (&entry.cluster, entry.weight))
    }

    /// The destinations with their weights, in configuration order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Arc<Cluster>, u32)> {
        self.entries
            .iter()
            .map(|entry| (&entry.cluster, entry.weight))
    }
}

/// An upstream cluster: a name and the endpoints requests are balanced over (round-robin).
#[derive(Debug)]
pub struct Cluster {
    /// Envoy-style cluster name (`<upstream>_<namespace>` for Gloo), used in metrics and dumps.
    pub name: String,
    /// Endpoints; empty means every request gets 503 `no healthy upstream`.
    pub endpoints: Vec<SocketAddr>,
    /// The endpoints as URI authorities, prepared once so forwarding does not format addresses.
    authorities: Vec<Authority>,
    /// See [`Cluster::unresolved`].
    unresolved: bool,
}

impl Cluster {
    /// A cluster with its endpoints.
    pub fn new(name: impl Into<String>, endpoints: Vec<SocketAddr>) -> Self {
        let authorities = endpoints
            .iter()
            .filter_map(|endpoint| Authority::try_from(endpoint.to_string()).ok())
            .collect();
        Self {
            name: name.into(),
            endpoints,
            authorities,
            unresolved: false,
        }
    }

    /// A destination the translator could not resolve (Gateway API: a `backendRef` to a missing
    /// Service, of a wrong kind, or not permitted by a ReferenceGrant). The cluster is known not to
    /// exist: a request whose pick lands on it is answered 500 with an empty body and not retried,
    /// as Envoy answers a route's `cluster_not_found_response_code: INTERNAL_SERVER_ERROR` for a
    /// cluster missing from CDS. Its weight still counts, so only its share of requests fails.
    pub fn unresolved(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            endpoints: Vec::new(),
            authorities: Vec::new(),
            unresolved: true,
        }
    }

    /// Whether this is a [`Cluster::unresolved`] destination.
    pub fn is_unresolved(&self) -> bool {
        self.unresolved
    }

    /// The endpoint whose round-robin turn `turn` is (`turn` counts up from 0 and wraps over the
    /// endpoints), or `None` when the cluster has none.
    pub fn endpoint(&self, turn: usize) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        Some(self.endpoints[turn % self.endpoints.len()])
    }

    /// Like [`Self::endpoint`], as a URI authority (prepared when the table was built).
    pub fn endpoint_authority(&self, turn: usize) -> Option<&Authority> {
        if self.authorities.is_empty() {
            return None;
        }
        Some(&self.authorities[turn % self.authorities.len()])
    }
}

/// Envoy's retry policy, reduced to what Gloo exposes.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first try (Gloo's default: 1).
    pub num_retries: u32,
    /// Timeout of each try; `None` means only the route's timeout applies.
    pub per_try_timeout: Option<Duration>,
    /// Which outcomes are retried.
    pub retry_on: RetryOn,
    /// The back-off base interval (Envoy `retry_back_off.base_interval`, Gateway API
    /// `retry.backoff`): the wait before retry `n` is random below `base * 2^(n-1)`, capped at
    /// `10 * base`. `None` is Envoy's default of 25 ms.
    pub backoff_base: Option<Duration>,
}

/// The retry conditions of Envoy's `retry_on` that colormesh supports.
///
/// Not `Copy` since [`RetryOn::status_codes`] is a list; the request path borrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryOn {
    /// `5xx`: any 5xx response, a connection failure, a reset or a per-try timeout.
    pub server_error: bool,
    /// `gateway-error`: 502, 503, 504 responses, and per-try timeouts.
    pub gateway_error: bool,
    /// `connect-failure`: the upstream connection could not be established.
    pub connect_failure: bool,
    /// `retriable-4xx`: 409 responses.
    pub retriable_4xx: bool,
    /// `reset`: the upstream reset or closed the connection before response headers.
    pub reset: bool,
    /// `retriable-status-codes` with Envoy's `retriable_status_codes`: responses with one of these
    /// statuses (Gateway API `retry.codes`). Empty means the condition is off. [`RetryOn::parse`]
    /// does not accept the name, since a `retry_on` string cannot carry the codes.
    pub status_codes: Vec<u16>,
}

impl RetryOn {
    /// Parses Envoy's comma-separated `retry_on` list; the first unknown name is the error.
    pub fn parse(list: &str) -> Result<Self, UnknownRetryOn> {
        let mut retry_on = Self::default();
        for name in list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match name {
                "5xx" => retry_on.server_error = true,
                "gateway-error" => retry_on.gateway_error = true,
                "connect-failure" => retry_on.connect_failure = true,
                "retriable-4xx" => retry_on.retriable_4xx = true,
                "reset" => retry_on.reset = true,
                unknown => return Err(UnknownRetryOn(unknown.to_owned())),
            }
        }
        Ok(retry_on)
    }

    /// The names of the enabled conditions, in Envoy's spelling.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.server_error, "5xx"),
            (self.gateway_error, "gateway-error"),
            (self.connect_failure, "connect-failure"),
            (self.retriable_4xx, "retriable-4xx"),
            (self.reset, "reset"),
            (!self.status_codes.is_empty(), "retriable-status-codes"),
        ]
        .into_iter()
        .filter_map(|(enabled, name)| enabled.then_some(name))
        .collect()
    }
}

/// A `retry_on` condition colormesh does not support; holds the name as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported retryOn condition {0:?}")]
pub struct UnknownRetryOn(pub String);

/// Header edits, applied in order: removals first, then additions.
#[derive(Debug, Default, Clone)]
pub struct HeaderEdits {
    /// Headers to add: `(name, value, append)`; `append == false` replaces existing values.
    pub add: Vec<(HeaderName, HeaderValue, bool)>,
    /// Headers to remove.
    pub remove: Vec<HeaderName>,
}

impl HeaderEdits {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// Applies the edits to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value, append) in &self.add {
            if *append {
                headers.append(name.clone(), value.clone());
            } else {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}

/// The result of routing one request.
#[derive(Debug)]
pub enum RouteDecision<'table> {
    /// A route matched.
    Matched {
        /// Index of the virtual host in [`RouteTable::virtual_hosts`].
        virtual_host: usize,
        /// Index of the route within that virtual host.
        route: usize,
        /// The route itself.
        entry: &'table Route,
    },
    /// A virtual host was selected but none of its routes matched: 404.
    NoRoute {
        /// Index of the virtual host in [`RouteTable::virtual_hosts`].
        virtual_host: usize,
    },
    /// No virtual host matched the authority: the table's [`Fallback`] applies.
    NoVirtualHost(&'table Fallback),
}

/// The parts of a request that routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'req> {
    /// The authority (absolute-form URI's, else the Host header), possibly with a port.
    pub authority: &'req str,
    /// The path, without the query string.
    pub path: &'req str,
    /// The raw query string, without the `?`.
    pub query: Option<&'req str>,
    /// The method.
    pub method: &'req Method,
    /// The request headers.
    pub headers: &'req HeaderMap,
}

impl RouteTable {
    /// Builds a table, indexing the virtual hosts' domains for Envoy's selection order.
    pub fn new(virtual_hosts: Vec<VirtualHost>, fallback: Fallback) -> Result<Self, TableError> {
        let domains = DomainIndex::build(&virtual_hosts)?;
        Ok(Self {
            virtual_hosts,
            fallback,
            domains,
        })
    }

    /// A table without virtual hosts: every request gets the fallback.
    pub fn empty(fallback: Fallback) -> Self {
        Self {
            virtual_hosts: Vec::new(),
            fallback,
            domains: DomainIndex::default(),
        }
    }

    /// The virtual hosts, in configuration order.
    pub fn virtual_hosts(&self) -> &[VirtualHost] {
        &self.virtual_hosts
    }

    /// What happens to requests no virtual host takes.
    pub fn fallback(&self) -> &Fallback {
        &self.fallback
    }

    /// Selects the virtual host for `authority`: exact, suffix and prefix domains are tried with
    /// the port first, then without it; `*` only when neither found one.
    pub fn select_virtual_host(&self, authority: &str) -> Option<usize> {
        let lowered = ascii_lowercase(authority);
        if let Some(index) = self.domains.lookup_specific(&lowered) {
            return Some(index);
        }
        let without_port = strip_port(&lowered);
        if without_port.len() != lowered.len()
            && let Some(index) = self.domains.lookup_specific(without_port)
        {
            return Some(index);
        }
        self.domains.any
    }

    /// Routes one request: virtual host by authority, then the first matching route.
    pub fn route(&self, request: &RequestView<'_>) -> RouteDecision<'_> {
        let Some(virtual_host) = self.select_virtual_host(request.authority) else {
            return RouteDecision::NoVirtualHost(&self.fallback);
        };
        let routes = &self.virtual_hosts[virtual_host].routes;
        match routes
            .iter()
            .position(|route| route.matcher.matches(request))
        {
            Some(route) => RouteDecision::Matched {
                virtual_host,
                route,
                entry: &routes[route],
            },
            None => RouteDecision::NoRoute { virtual_host },
        }
    }
}

impl RouteMatcher {
    /// Whether `request` meets every condition.
    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        self.path_matches(request.path)
            && (self.methods.is_empty() || self.methods.contains(request.method))
            && self
                .headers
                .iter()
                .all(|matcher| matcher.matches(request.headers))
            && self
                .query_parameters
                .iter()
                .all(|matcher| matcher.matches(request.query.unwrap_or("")))
    }

    fn path_matches(&self, path: &str) -> bool {
        match &self.path {
            PathMatcher::Prefix(prefix) if self.case_sensitive => path.starts_with(prefix.as_str()),
            PathMatcher::Prefix(prefix) => path
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
            PathMatcher::Exact(exact) if self.case_sensitive => path == exact,
            PathMatcher::Exact(exact) => path.eq_ignore_ascii_case(exact),
            PathMatcher::Regex(regex) => regex.is_full_match(path),
            PathMatcher::PathSeparatedPrefix(prefix) if prefix == "/" => true,
            PathMatcher::PathSeparatedPrefix(prefix) => {
                let Some(head) = path.get(..prefix.len()) else {
                    return false;
                };
                let head_matches = if self.case_sensitive {
                    head == prefix
                } else {
                    head.eq_ignore_ascii_case(prefix)
                };
                head_matches && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
            }
        }
    }
}

impl HeaderMatcher {
    /// Whether the headers meet this condition.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(&self.name).iter();
        let Some(first) = values.next() else {
            return self.invert && matches!(self.value, ValueMatcher::Present);
        };
        let joined: Cow<'_, [u8]> = match values.next() {
            None => Cow::Borrowed(first.as_bytes()),
            Some(second) => {
                let mut joined = [first.as_bytes(), second.as_bytes()].join(&b","[..]);
                for value in values {
                    joined.push(b',');
                    joined.extend_from_slice(value.as_bytes());
                }
                Cow::Owned(joined)
            }
        };
        // Non-UTF-8 header values can only satisfy a presence check.
        let matched = match std::str::from_utf8(&joined) {
            Ok(value) => self.value.matches(value),
            Err(_) => matches!(self.value, ValueMatcher::Present),
        };
        matched != self.invert
    }
}

impl QueryParameterMatcher {
    /// Whether the raw query string meets this condition.
    pub fn matches(&self, query: &str) -> bool {
        query
            .split('&')
            .find_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name == self.name).then_some(value)
            })
            .is_some_and(|value| self.value.matches(value))
    }
}

impl PathRewrite {
    /// The path (with the query re-attached) to send upstream, or `None` when it is unchanged.
    ///
    /// `matcher` is the route's path matcher: a prefix rewrite replaces exactly the matched prefix.
    pub fn apply(&self, matcher: &PathMatcher, path: &str, query: Option<&str>) -> Option<String> {
        let rewritten_path = match self {
            Self::None => return None,
            Self::Prefix(replacement) => prefix_rewrite(replacement, matcher, path),
            Self::ReplacePrefixMatch(replacement) => {
                replace_prefix_match(replacement, matcher, path)
            }
            Self::FullPath(replacement) => replacement.clone(),
            Self::Regex {
                pattern,
                substitution,
            } => {
                if !pattern.unanchored.is_match(path) {
                    return None;
                }
                pattern
                    .unanchored
                    .replace_all(path, |captures: &regex::Captures<'_>| {
                        let mut replacement = String::with_capacity(substitution.len());
                        expand_backslash_groups(captures, substitution, &mut replacement);
                        replacement
                    })
                    .into_owned()
            }
        };
        Some(match query {
            Some(query) => format!("{rewritten_path}?{query}"),
            None => rewritten_path,
        })
    }
}

/// Expands `\0`..`\9` in `substitution` with the capture groups (missing groups expand to
/// nothing), as Envoy's RE2-based `regex_rewrite` does; `\\` is a literal backslash.
fn expand_backslash_groups(captures: &regex::Captures<'_>, substitution: &str, out: &mut String) {
    let mut chars = substitution.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some(digit @ '0'..='9') => {
                chars.next();
                let group = digit as usize - '0' as usize;
                if let Some(found) = captures.get(group) {
                    out.push_str(found.as_str());
                }
            }
            Some('\\') => {
                chars.next();
                out.push('\\');
            }
            _ => out.push('\\'),
        }
    }
}

/// Virtual host lookup in Envoy's order: exact domain, then the longest `*.suffix` (or `*suffix`)
/// wildcard, then the longest `prefix.*` wildcard, then `*`.
#[derive(Debug, Default)]
struct DomainIndex {
    exact: HashMap<String, usize>,
    /// `(suffix, vhost)`, longest suffix first.
    suffixes: Vec<(String, usize)>,
    /// `(prefix, vhost)`, longest prefix first.
    prefixes: Vec<(String, usize)>,
    any: Option<usize>,
}

impl DomainIndex {
    fn build(virtual_hosts: &[VirtualHost]) -> Result<Self, TableError> {
        let mut index = Self::default();
        let mut owners: HashMap<String, usize> = HashMap::new();
        for (position, virtual_host) in virtual_hosts.iter().enumerate() {
            for domain in &virtual_host.domains {
                let domain = domain.to_ascii_lowercase();
                if let Some(&first) = owners.get(&domain) {
                    return Err(TableError::DuplicateDomain {
                        domain,
                        first: virtual_hosts[first].name.clone(),
                        second: virtual_host.name.clone(),
                    });
                }
                owners.insert(domain.clone(), position);
                let invalid = || TableError::InvalidDomain {
                    domain: domain.clone(),
                    virtual_host: virtual_host.name.clone(),
                };
                if domain == "*" {
                    index.any = Some(position);
                } else if let Some(suffix) = domain.strip_prefix('*') {
                    if suffix.contains('*') {
                        return Err(invalid());
                    }
                    index.suffixes.push((suffix.to_owned(), position));
                } else if let Some(prefix) = domain.strip_suffix('*') {
                    if prefix.contains('*') {
                        return Err(invalid());
                    }
                    index.prefixes.push((prefix.to_owned(), position));
                } else if domain.contains('*') {
                    return Err(invalid());
                } else {
                    index.exact.insert(domain, position);
                }
            }
        }
        // Stable sorts keep configuration order among equally long wildcards.
        index
            .suffixes
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        index
            .prefixes
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(index)
    }

    /// Exact, then suffix, then prefix matches; `*` is left to the caller.
    fn lookup_specific(&self, host: &str) -> Option<usize> {
        if let Some(&index) = self.exact.get(host) {
            return Some(index);
        }
        // Envoy requires the wildcard to stand for at least one character.
        let by_suffix = self
            .suffixes
            .iter()
            .find(|(suffix, _)| host.len() > suffix.len() && host.ends_with(suffix.as_str()));
        if let Some(&(_, index)) = by_suffix {
            return Some(index);
        }
        let by_prefix = self
            .prefixes
            .iter()
            .find(|(prefix, _)| host.len() > prefix.len() && host.starts_with(prefix.as_str()));
        if let Some(&(_, index)) = by_prefix {
            return Some(index);
        }
        None
    }
}

fn ascii_lowercase(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|byte| byte.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

/// `host:port` -> `host`, `[::1]:80` -> `[::1]`; anything else is returned unchanged.
pub(crate) fn strip_port(authority: &str) -> &str {
    let host_end = if authority.starts_with('[') {
        authority
            .find(']')
            .map_or(authority.len(), |bracket| bracket + 1)
    } else {
        authority.find(':').unwrap_or(authority.len())
    };
    match authority[host_end..].strip_prefix(':') {
        Some(port) if port.bytes().all(|byte| byte.is_ascii_digit()) => &authority[..host_end],
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn virtual_host(name: &str, domains: &[&str]) -> VirtualHost {
        VirtualHost {
            name: name.to_owned(),
            domains: domains.iter().map(|domain| (*domain).to_owned()).collect(),
            routes: Vec::new(),
        }
    }

    fn selected(table: &RouteTable, authority: &str) -> Option<String> {
        table
            .select_virtual_host(authority)
            .map(|index| table.virtual_hosts()[index].name.clone())
    }

    #[test]
    fn domain_selection_follows_envoy_order() {
        let table = RouteTable::new(
            vec![
                virtual_host("any", &["*"]),
                virtual_host("prefix-short", &["api.*"]),
                virtual_host("prefix-long", &["api.colors.*"]),
                virtual_host("suffix-short", &["*.com"]),
                virtual_host("suffix-long", &["*.example.com"]),
                virtual_host(
                    "exact",
                    &["www.example.com", "colorteller.appmesh-demo:9080"],
                ),
            ],
            Fallback::NotFound,
        )
        .expect("valid table");
        assert_eq!(
            selected(&table, "www.example.com").as_deref(),
            Some("exact")
        );
        assert_eq!(
            selected(&table, "WWW.Example.COM").as_deref(),
            Some("exact")
        );
        assert_eq!(
            selected(&table, "www.example.com:8080").as_deref(),
            Some("exact")
        );
        assert_eq!(
            selected(&table, "colorteller.appmesh-demo:9080").as_deref(),
            Some("exact")
        );
        // With its port the authority matches no exact domain, without it `*` is all that is left
        // for this host; the port-first lookup must not stop at `*`.
        assert_eq!(
            selected(&table, "colorteller.appmesh-demo:80").as_deref(),
            Some("any")
        );
        assert_eq!(
            selected(&table, "a.example.com").as_deref(),
            Some("suffix-long")
        );
        assert_eq!(
            selected(&table, "example.com").as_deref(),
            Some("suffix-short")
        );
        // Suffix wildcards win over prefix wildcards.
        assert_eq!(
            selected(&table, "api.colors.com").as_deref(),
            Some("suffix-short")
        );
        assert_eq!(
            selected(&table, "api.colors.io").as_deref(),
            Some("prefix-long")
        );
        assert_eq!(selected(&table, "api.io").as_deref(), Some("prefix-short"));
        // A wildcard stands for at least one character.
        assert_eq!(
            selected(&table, ".example.com").as_deref(),
            Some("suffix-short")
        );
        assert_eq!(selected(&table, "elsewhere").as_deref(), Some("any"));
    }

    #[test]
    fn port_specific_domain_is_tried_before_the_portless_one() {
        let table = RouteTable::new(
            vec![
                virtual_host("portless", &["colorteller"]),
                virtual_host("ported", &["colorteller:9080"]),
            ],
            Fallback::NotFound,
        )
        .expect("valid table");
        assert_eq!(
            selected(&table, "colorteller:9080").as_deref(),
            Some("ported")
        );
        assert_eq!(
            selected(&table, "colorteller:80").as_deref(),
            Some("portless")
        );
        assert_eq!(selected(&table, "colorteller").as_deref(), Some("portless"));
        assert_eq!(selected(&table, "other"), None);
    }

    #[test]
    fn duplicate_and_misplaced_wildcard_domains_are_rejected() {
        let duplicate = RouteTable::new(
            vec![virtual_host("a", &["x.com"]), virtual_host("b", &["X.com"])],
            Fallback::NotFound,
        );
        assert!(
            matches!(duplicate, Err(TableError::DuplicateDomain { .. })),
            "{duplicate:?}"
        );
        let misplaced = RouteTable::new(vec![virtual_host("a", &["a.*.com"])], Fallback::NotFound);
        assert!(
            matches!(misplaced, Err(TableError::InvalidDomain { .. })),
            "{misplaced:?}"
        );
    }

    #[test]
    fn strip_port_handles_names_ipv4_and_ipv6() {
        assert_eq!(strip_port("colorteller:9080"), "colorteller");
        assert_eq!(strip_port("colorteller"), "colorteller");
        assert_eq!(strip_port("10.0.0.1:80"), "10.0.0.1");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    #[derive(Clone)]
    struct Case<'a> {
        authority: &'a str,
        path: &'a str,
        query: Option<&'a str>,
        method: Method,
        headers: &'a [(&'static str, &'static str)],
    }

    impl<'a> Case<'a> {
        fn get(path: &'a str) -> Self {
            Self {
                authority: "any",
                path,
                query: None,
                method: Method::GET,
                headers: &[],
            }
        }
    }

    fn matches(matcher: &RouteMatcher, case: &Case<'_>) -> bool {
        let mut headers = HeaderMap::new();
        for (name, value) in case.headers {
            headers.append(*name, HeaderValue::from_static(value));
        }
        matcher.matches(&RequestView {
            authority: case.authority,
            path: case.path,
            query: case.query,
            method: &case.method,
            headers: &headers,
        })
    }

    fn prefix(path: &str) -> RouteMatcher {
        RouteMatcher::path(PathMatcher::Prefix(path.to_owned()))
    }

    #[test]
    fn path_matchers_cover_prefix_exact_regex_and_case() {
        let color = prefix("/appmesh/color");
        assert!(matches(&color, &Case::get("/appmesh/color")));
        assert!(matches(&color, &Case::get("/appmesh/color/")));
        assert!(
            matches(&color, &Case::get("/appmesh/colorful")),
            "prefix is a plain string prefix"
        );
        assert!(!matches(&color, &Case::get("/appmesh/ping")));
        assert!(
            !matches(&color, &Case::get("/APPMESH/color")),
            "case-sensitive by default"
        );
        assert!(!matches(&color, &Case::get("//appmesh/color")));

        let mut insensitive = prefix("/appmesh/color");
        insensitive.case_sensitive = false;
        assert!(matches(&insensitive, &Case::get("/APPMESH/Color/x")));

        let exact = RouteMatcher::path(PathMatcher::Exact("/color".to_owned()));
        assert!(matches(&exact, &Case::get("/color")));
        assert!(!matches(&exact, &Case::get("/color/")));
        assert!(
            matches(
                &exact,
                &Case {
                    query: Some("x=1"),
                    ..Case::get("/color")
                }
            ),
            "the query is never part of the path"
        );

        let regex = RouteMatcher::path(PathMatcher::Regex(
            FullRegex::new("/color/[a-z]+").expect("regex"),
        ));
        assert!(matches(&regex, &Case::get("/color/clear")));
        assert!(
            !matches(&regex, &Case::get("/color/clear/more")),
            "regex must match the whole path"
        );
        assert!(
            !matches(&regex, &Case::get("/x/color/clear")),
            "regex must match the whole path"
        );
        let alternation = FullRegex::new("/a|/b").expect("regex");
        assert!(
            !alternation.is_full_match("/ab"),
            "anchoring wraps alternations as a whole"
        );
        assert!(FullRegex::new("(").is_err());

        assert!(matches(&RouteMatcher::any(), &Case::get("/")));
        assert!(matches(
            &RouteMatcher::any(),
            &Case::get("/anything?at=all")
        ));
    }

    #[test]
    fn header_query_and_method_conditions() {
        let mut matcher = prefix("/");
        matcher.headers = vec![
            HeaderMatcher {
                name: HeaderName::from_static("x-color"),
                value: ValueMatcher::Regex(FullRegex::new("bl(ue|ack)").expect("regex")),
                invert: false,
            },
            HeaderMatcher {
                name: HeaderName::from_static("x-canary"),
                value: ValueMatcher::Exact("yes".to_owned()),
                invert: true,
            },
        ];
        matcher.query_parameters = vec![QueryParameterMatcher {
            name: "v".to_owned(),
            value: ValueMatcher::Exact("2".to_owned()),
        }];
        matcher.methods = vec![Method::GET, Method::POST];
        let base = Case {
            query: Some("a=1&v=2"),
            headers: &[("x-color", "blue"), ("x-canary", "no")],
            ..Case::get("/x")
        };
        assert!(matches(&matcher, &base));
        assert!(
            !matches(
                &matcher,
                &Case {
                    headers: &[("x-color", "blue")],
                    ..base.clone()
                }
            ),
            "an absent header fails an inverted value matcher (Envoy)"
        );
        assert!(
            !matches(
                &matcher,
                &Case {
                    headers: &[("x-color", "bluey")],
                    ..base.clone()
                }
            ),
            "regex is whole-value"
        );
        assert!(
            !matches(
                &matcher,
                &Case {
                    headers: &[],
                    ..base.clone()
                }
            ),
            "missing header fails a plain matcher"
        );
        assert!(
            !matches(
                &matcher,
                &Case {
                    headers: &[("x-color", "black"), ("x-canary", "yes")],
                    ..base.clone()
                }
            ),
            "inverted matcher rejects the matching value"
        );
        assert!(matches(
            &matcher,
            &Case {
                headers: &[("x-color", "black"), ("x-canary", "no")],
                ..base.clone()
            }
        ));
        assert!(
            !matches(
                &matcher,
                &Case {
                    query: Some("v=3&v=2"),
                    ..base.clone()
                }
            ),
            "first occurrence is compared"
        );
        assert!(!matches(
            &matcher,
            &Case {
                query: None,
                ..base.clone()
            }
        ));
        assert!(!matches(
            &matcher,
            &Case {
                method: Method::DELETE,
                ..base.clone()
            }
        ));
        assert!(matches(
            &matcher,
            &Case {
                method: Method::POST,
                ..base.clone()
            }
        ));
    }

    #[test]
    fn value_matchers_and_multi_valued_headers() {
        assert!(ValueMatcher::Prefix("ab".to_owned()).matches("abc"));
        assert!(ValueMatcher::Suffix("bc".to_owned()).matches("abc"));
        assert!(!ValueMatcher::Suffix("bc".to_owned()).matches("abcd"));
        let range = ValueMatcher::Range { start: -10, end: 0 };
        assert!(range.matches("-10"));
        assert!(range.matches("-1"));
        assert!(!range.matches("0"), "end is exclusive");
        assert!(!range.matches("x"));

        let present = HeaderMatcher {
            name: HeaderName::from_static("x-a"),
            value: ValueMatcher::Present,
            invert: false,
        };
        let joined = HeaderMatcher {
            name: HeaderName::from_static("x-a"),
            value: ValueMatcher::Exact("1,2".to_owned()),
            invert: false,
        };
        let absent_inverted = HeaderMatcher {
            name: HeaderName::from_static("x-b"),
            value: ValueMatcher::Exact("1".to_owned()),
            invert: true,
        };
        let mut headers = HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        assert!(present.matches(&headers));
        assert!(
            joined.matches(&headers),
            "repeated headers are joined with commas"
        );
        assert!(
            !absent_inverted.matches(&headers),
            "an absent header fails an inverted value matcher, as in Envoy"
        );
        let must_be_absent = HeaderMatcher {
            name: HeaderName::from_static("x-b"),
            value: ValueMatcher::Present,
            invert: true,
        };
        assert!(
            must_be_absent.matches(&headers),
            "an inverted presence check matches an absent header"
        );
        assert!(!must_be_absent.matches(&HeaderMap::from_iter([(
            HeaderName::from_static("x-b"),
            HeaderValue::from_static("")
        )])));
    }

    fn rewrite(
        rewrite: &PathRewrite,
        matcher: &PathMatcher,
        path: &str,
        query: Option<&str>,
    ) -> String {
        rewrite
            .apply(matcher, path, query)
            .unwrap_or_else(|| query.map_or(path.to_owned(), |query| format!("{path}?{query}")))
    }

    #[test]
    fn prefix_rewrite_replaces_only_the_matched_prefix() {
        let matcher = PathMatcher::Prefix("/appmesh/color".to_owned());
        let to_color = PathRewrite::Prefix("/color".to_owned());
        assert_eq!(
            rewrite(&to_color, &matcher, "/appmesh/color", None),
            "/color"
        );
        assert_eq!(
            rewrite(&to_color, &matcher, "/appmesh/color/clear", None),
            "/color/clear"
        );
        assert_eq!(
            rewrite(&to_color, &matcher, "/appmesh/color", Some("x=1")),
            "/color?x=1"
        );
        assert_eq!(
            rewrite(&to_color, &matcher, "/appmesh/colorful", None),
            "/colorful"
        );
        assert_eq!(
            rewrite(&to_color, &matcher, "/appmesh/color/", None),
            "/color/"
        );

        let appmesh = PathMatcher::Prefix("/appmesh".to_owned());
        let to_root = PathRewrite::Prefix("/".to_owned());
        assert_eq!(
            rewrite(&to_root, &appmesh, "/appmesh/color", None),
            "//color",
            "Envoy's classic // result"
        );
        let appmesh_slash = PathMatcher::Prefix("/appmesh/".to_owned());
        assert_eq!(
            rewrite(&to_root, &appmesh_slash, "/appmesh/color", None),
            "/color"
        );

        let mut insensitive = RouteMatcher::path(PathMatcher::Prefix("/appmesh/".to_owned()));
        insensitive.case_sensitive = false;
        assert_eq!(
            rewrite(&to_root, &insensitive.path, "/APPMESH/Color", None),
            "/Color"
        );

        let exact = PathMatcher::Exact("/old".to_owned());
        assert_eq!(
            rewrite(
                &PathRewrite::Prefix("/new".to_owned()),
                &exact,
                "/old",
                Some("q")
            ),
            "/new?q"
        );
        assert_eq!(
            PathRewrite::None.apply(&matcher, "/appmesh/color", Some("x=1")),
            None
        );
    }

    #[test]
    fn path_separated_prefix_matches_whole_elements_only() {
        let separated =
            |prefix: &str| RouteMatcher::path(PathMatcher::PathSeparatedPrefix(prefix.to_owned()));
        let color = separated("/appmesh/color");
        for (path, expected) in [
            ("/appmesh/color", true),
            ("/appmesh/color/", true),
            ("/appmesh/color/x", true),
            ("/appmesh/colorful", false),
            ("/appmesh/colo", false),
            ("/appmesh", false),
            ("/APPMESH/color", false),
            ("/other", false),
        ] {
            assert_eq!(color.path_matches(path), expected, "{path}");
        }
        let root = separated("/");
        for path in ["/", "/x", "//x", "/appmesh/color"] {
            assert!(root.path_matches(path), "the lone / matches {path}");
        }
        let mut insensitive = separated("/Foo");
        insensitive.case_sensitive = false;
        assert!(insensitive.path_matches("/foo/bar"));
        assert!(!insensitive.path_matches("/foobar"));
        assert!(!insensitive.path_matches("/fo"), "shorter than the prefix");
    }

    #[test]
    fn replace_prefix_match_follows_the_gateway_api_table() {
        let foo = PathMatcher::PathSeparatedPrefix("/foo".to_owned());
        let cases = [
            ("/foo/bar", "/xyz", "/xyz/bar"),
            ("/foo/bar", "/xyz/", "/xyz/bar"),
            ("/foo", "/xyz", "/xyz"),
            ("/foo/", "/xyz", "/xyz/"),
            ("/foo/bar", "/", "/bar"),
            ("/foo/", "/", "/"),
            ("/foo", "/", "/"),
            ("/foo/bar", "", "/bar"),
            ("/foo", "", "/"),
            ("/foo//bar", "/", "/bar"),
        ];
        for (path, replacement, expected) in cases {
            let replace = PathRewrite::ReplacePrefixMatch(replacement.to_owned());
            assert_eq!(
                rewrite(&replace, &foo, path, None),
                expected,
                "{path} with {replacement:?}"
            );
        }
        let replace = PathRewrite::ReplacePrefixMatch("/xyz".to_owned());
        assert_eq!(
            rewrite(&replace, &foo, "/foo/bar", Some("a=1&b")),
            "/xyz/bar?a=1&b",
            "the query is kept"
        );
        let root = PathMatcher::PathSeparatedPrefix("/".to_owned());
        assert_eq!(rewrite(&replace, &root, "/bar", None), "/xyz/bar");
        assert_eq!(rewrite(&replace, &root, "/", None), "/xyz/");
        let to_root = PathRewrite::ReplacePrefixMatch("/".to_owned());
        assert_eq!(rewrite(&to_root, &root, "/bar", None), "/bar");
        let exact = PathMatcher::Exact("/foo/bar".to_owned());
        assert_eq!(
            rewrite(&replace, &exact, "/foo/bar", Some("q")),
            "/xyz?q",
            "after an exact matcher the whole path is replaced"
        );
    }

    #[test]
    fn full_path_rewrite_replaces_the_path_and_keeps_the_query() {
        let matcher = PathMatcher::PathSeparatedPrefix("/foo".to_owned());
        let full = PathRewrite::FullPath("/one".to_owned());
        assert_eq!(
            rewrite(&full, &matcher, "/foo/bar", Some("x=1")),
            "/one?x=1"
        );
        assert_eq!(rewrite(&full, &matcher, "/foo", None), "/one");
    }

    fn redirect(path: RedirectPath) -> Redirect {
        Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path,
            status: StatusCode::FOUND,
        }
    }

    fn request<'a>(
        scheme: &'a str,
        host: &'a str,
        path: &'a str,
        query: Option<&'a str>,
    ) -> RedirectRequest<'a> {
        RedirectRequest {
            scheme,
            host,
            path,
            query,
        }
    }

    #[test]
    fn redirect_location_is_built_as_envoy_builds_it() {
        let foo = PathMatcher::PathSeparatedPrefix("/foo".to_owned());
        let plain = request("http", "example.com:8080", "/foo/bar", Some("q=1"));
        let keep = redirect(RedirectPath::Keep);
        assert_eq!(
            keep.location(&foo, &plain),
            "http://example.com:8080/foo/bar?q=1"
        );

        let https = Redirect {
            scheme: Some("https".to_owned()),
            ..keep.clone()
        };
        assert_eq!(
            https.location(&foo, &plain),
            "https://example.com:8080/foo/bar?q=1",
            "a port that is not the old scheme's default is kept"
        );
        assert_eq!(
            https.location(&foo, &request("http", "example.com:80", "/", None)),
            "https://example.com/",
            ":80 goes with http"
        );
        assert_eq!(
            https.location(&foo, &request("https", "example.com:443", "/", None)),
            "https://example.com:443/",
            "the scheme does not change, so the port stays"
        );
        let to_http = Redirect {
            scheme: Some("http".to_owned()),
            ..keep.clone()
        };
        assert_eq!(
            to_http.location(&foo, &request("https", "example.com:443", "/", None)),
            "http://example.com/"
        );
        assert_eq!(
            https.location(&foo, &request("http", "[::1]:80", "/", None)),
            "https://[::1]/"
        );
        assert_eq!(
            https.location(&foo, &request("http", "[::1]", "/", None)),
            "https://[::1]/",
            "an IPv6 literal without a port"
        );

        let port = Redirect {
            port: Some(8443),
            ..keep.clone()
        };
        assert_eq!(
            port.location(&foo, &plain),
            "http://example.com:8443/foo/bar?q=1",
            "a redirect port replaces the request's"
        );
        let port_443 = Redirect {
            scheme: Some("https".to_owned()),
            port: Some(443),
            ..keep.clone()
        };
        assert_eq!(
            port_443.location(&foo, &plain),
            "https://example.com:443/foo/bar?q=1",
            "Envoy writes a configured port even when it is the default"
        );

        let host = Redirect {
            hostname: Some("other.example".to_owned()),
            ..keep.clone()
        };
        assert_eq!(
            host.location(&foo, &plain),
            "http://other.example/foo/bar?q=1",
            "a new hostname drops the request's port"
        );
        let host_port = Redirect {
            port: Some(81),
            ..host.clone()
        };
        assert_eq!(
            host_port.location(&foo, &plain),
            "http://other.example:81/foo/bar?q=1"
        );

        let full = redirect(RedirectPath::FullPath("/elsewhere".to_owned()));
        assert_eq!(
            full.location(&foo, &plain),
            "http://example.com:8080/elsewhere?q=1"
        );
        let full_with_query = redirect(RedirectPath::FullPath("/elsewhere?x=2".to_owned()));
        assert_eq!(
            full_with_query.location(&foo, &plain),
            "http://example.com:8080/elsewhere?x=2",
            "a path with its own query replaces the request's"
        );
        let relative = redirect(RedirectPath::FullPath("elsewhere".to_owned()));
        assert_eq!(
            relative.location(&foo, &request("http", "h", "/foo", None)),
            "http://h/elsewhere"
        );

        let prefix = redirect(RedirectPath::ReplacePrefixMatch("/xyz/".to_owned()));
        assert_eq!(
            prefix.location(&foo, &plain),
            "http://example.com:8080/xyz/bar?q=1"
        );
        let to_root = redirect(RedirectPath::ReplacePrefixMatch("/".to_owned()));
        assert_eq!(
            to_root.location(&foo, &request("http", "h", "/foo", None)),
            "http://h/"
        );
    }

    #[test]
    fn unresolved_clusters_are_marked_and_have_no_endpoints() {
        let missing = Cluster::unresolved("backend-missing");
        assert!(missing.is_unresolved());
        assert_eq!(missing.endpoint(0), None);
        assert!(!Cluster::new("real", Vec::new()).is_unresolved());
        let split = WeightedClusters::new(vec![(Arc::new(missing), 1), (cluster("real"), 3)])
            .expect("weights");
        assert_eq!(split.total(), 4, "the unresolved weight keeps its share");
        assert!(split.pick(0).is_unresolved());
        assert!(!split.pick(1).is_unresolved());
    }

    #[test]
    fn regex_rewrite_substitutes_groups_and_keeps_the_query() {
        let matcher = PathMatcher::Prefix("/".to_owned());
        let swap = PathRewrite::Regex {
            pattern: FullRegex::new("/service/([^/]+)/(.*)").expect("regex"),
            substitution: r"/\2/instance/\1".to_owned(),
        };
        assert_eq!(
            rewrite(&swap, &matcher, "/service/foo/v1/api", Some("a=b")),
            "/v1/api/instance/foo?a=b"
        );
        assert_eq!(
            rewrite(&swap, &matcher, "/other", None),
            "/other",
            "no match leaves the path alone"
        );
        let literal = PathRewrite::Regex {
            pattern: FullRegex::new("/(.*)").expect("regex"),
            substitution: r"/x\\\1\9".to_owned(),
        };
        assert_eq!(rewrite(&literal, &matcher, "/y", None), r"/x\y");
        // Envoy's documented example: every match is replaced, not only a whole-path match.
        let global = PathRewrite::Regex {
            pattern: FullRegex::new("one").expect("regex"),
            substitution: "two".to_owned(),
        };
        assert_eq!(
            rewrite(&global, &matcher, "/xxx/one/yyy/one/zzz", None),
            "/xxx/two/yyy/two/zzz"
        );
    }

    #[test]
    fn first_matching_route_wins_and_no_route_is_reported() {
        let route = |name: &str, path: &str| Route {
            name: name.to_owned(),
            matcher: prefix(path),
            action: RouteAction::Respond {
                status: StatusCode::OK,
                body: Bytes::new(),
            },
        };
        let table = RouteTable::new(
            vec![VirtualHost {
                name: "vh".to_owned(),
                domains: vec!["colors".to_owned()],
                routes: vec![route("short", "/a"), route("long", "/a/b")],
            }],
            Fallback::Passthrough { timeout: None },
        )
        .expect("valid table");
        let headers = HeaderMap::new();
        let view = |authority: &'static str, path: &'static str| RequestView {
            authority,
            path,
            query: None,
            method: &Method::GET,
            headers: &headers,
        };
        match table.route(&view("colors", "/a/b")) {
            RouteDecision::Matched { route, entry, .. } => {
                assert_eq!(
                    (route, entry.name.as_str()),
                    (0, "short"),
                    "list order, not specificity"
                );
            }
            other => panic!("expected a match, got {other:?}"),
        }
        assert!(matches!(
            table.route(&view("colors", "/b")),
            RouteDecision::NoRoute { virtual_host: 0 }
        ));
        assert!(matches!(
            table.route(&view("elsewhere", "/a")),
            RouteDecision::NoVirtualHost(Fallback::Passthrough { .. })
        ));
    }

    fn cluster(name: &str) -> Arc<Cluster> {
        Arc::new(Cluster::new(name, Vec::new()))
    }

    #[test]
    fn weighted_pick_walks_envoy_intervals() {
        let clusters = WeightedClusters::new(vec![
            (cluster("a"), 80),
            (cluster("zero"), 0),
            (cluster("b"), 20),
        ])
        .expect("valid weights");
        assert_eq!(clusters.total(), 100);
        assert_eq!(clusters.pick(0).name, "a");
        assert_eq!(clusters.pick(79).name, "a");
        assert_eq!(clusters.pick(80).name, "b");
        assert_eq!(clusters.pick(99).name, "b");
        assert_eq!(clusters.pick(100).name, "a", "random % total");
        let zero_first =
            WeightedClusters::new(vec![(cluster("zero"), 0), (cluster("all"), 5)]).expect("valid");
        assert!((0..50).all(|random| zero_first.pick(random).name == "all"));
    }

    #[test]
    fn zero_or_overflowing_total_weight_cannot_be_constructed() {
        let zero = WeightedClusters::new(vec![(cluster("a"), 0), (cluster("b"), 0)]);
        assert!(matches!(
            zero,
            Err(TableError::ZeroTotalWeight { destinations: 2 })
        ));
        assert!(matches!(
            WeightedClusters::new(Vec::new()),
            Err(TableError::ZeroTotalWeight { destinations: 0 })
        ));
        let overflow = WeightedClusters::new(vec![(cluster("a"), u32::MAX), (cluster("b"), 1)]);
        assert!(matches!(overflow, Err(TableError::TotalWeightOverflow)));
    }

    #[test]
    fn seeded_weighted_picks_fit_the_weights() {
        use rand::{RngCore, SeedableRng};
        use statrs::distribution::{ChiSquared, ContinuousCDF};

        let weights = [50_u32, 30, 0, 20];
        let clusters = WeightedClusters::new(
            weights
                .iter()
                .enumerate()
                .map(|(index, weight)| (cluster(&format!("c{index}")), *weight))
                .collect(),
        )
        .expect("valid weights");
        let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
        let samples = 100_000;
        let mut counts = [0_u64; 4];
        for _ in 0..samples {
            counts[clusters.pick_index(rng.next_u64())] += 1;
        }
        assert_eq!(counts[2], 0, "weight 0 is never picked");
        let statistic: f64 = weights
            .iter()
            .zip(counts)
            .filter(|(weight, _)| **weight > 0)
            .map(|(weight, observed)| {
                let expected = f64::from(*weight) / 100.0 * f64::from(samples);
                (observed as f64 - expected).powi(2) / expected
            })
            .sum();
        let p_value = 1.0 - ChiSquared::new(2.0).expect("df").cdf(statistic);
        assert!(
            p_value > 1e-3,
            "counts {counts:?} do not fit 50/30/20 (chi2 {statistic}, p {p_value})"
        );
        // And a clearly wrong distribution is detected by the same statistic.
        let skewed: f64 = [(50.0, 45_000.0), (30.0, 35_000.0), (20.0, 20_000.0)]
            .iter()
            .map(|(weight, observed): &(f64, f64)| {
                let expected = weight / 100.0 * f64::from(samples);
                (observed - expected).powi(2) / expected
            })
            .sum();
        assert!(1.0 - ChiSquared::new(2.0).expect("df").cdf(skewed) < 1e-3);
    }

    #[test]
    fn endpoint_turns_wrap_over_the_endpoints() {
        let addresses: Vec<SocketAddr> = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
            .iter()
            .map(|a| a.parse().expect("addr"))
            .collect();
        let cluster = Cluster::new("rr", addresses.clone());
        let picked: Vec<SocketAddr> = (0..6).filter_map(|turn| cluster.endpoint(turn)).collect();
        assert_eq!(picked, [addresses.clone(), addresses].concat());
        assert_eq!(
            cluster.endpoint_authority(4).map(Authority::as_str),
            Some("127.0.0.1:2")
        );
        let empty = Cluster::new("empty", Vec::new());
        assert_eq!(empty.endpoint(0), None);
        assert!(empty.endpoint_authority(0).is_none());
    }

    #[test]
    fn retry_on_parses_envoy_names() {
        let parsed = RetryOn::parse("5xx, connect-failure,reset").expect("valid");
        assert_eq!(parsed.names(), ["5xx", "connect-failure", "reset"]);
        let codes = RetryOn {
            status_codes: vec![500, 418],
            ..parsed
        };
        assert_eq!(
            codes.names(),
            ["5xx", "connect-failure", "reset", "retriable-status-codes"]
        );
        assert_eq!(
            RetryOn::parse("retriable-status-codes"),
            Err(UnknownRetryOn("retriable-status-codes".to_owned())),
            "a retry_on string cannot carry the codes"
        );
        assert_eq!(
            RetryOn::parse("bogus"),
            Err(UnknownRetryOn("bogus".to_owned()))
        );
    }

    #[test]
    fn header_edits_remove_then_add_or_append() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("old"));
        headers.insert("x-b", HeaderValue::from_static("old"));
        headers.insert("x-gone", HeaderValue::from_static("1"));
        HeaderEdits {
            add: vec![
                (
                    HeaderName::from_static("x-a"),
                    HeaderValue::from_static("new"),
                    false,
                ),
                (
                    HeaderName::from_static("x-b"),
                    HeaderValue::from_static("more"),
                    true,
                ),
            ],
            remove: vec![HeaderName::from_static("x-gone")],
        }
        .apply(&mut headers);
        let values = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or(""))
                .collect::<Vec<_>>()
        };
        assert_eq!(values("x-a"), ["new"]);
        assert_eq!(values("x-b"), ["old", "more"]);
        assert!(values("x-gone").is_empty());
    }
}

//! The probe set: requests at the boundaries of every route matcher of both sides, sent once
//! through each side's ingress, and the comparison of what came back (status, reply headers,
//! and what the backend saw through the request echo).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::config::{MatchRule, PathRule, RouteInfo, concrete_host};

/// The "route" of the probes no route gave (the root, an unrouted path).
pub const GENERAL: &str = "(general probes)";

/// A host no route names.
pub const UNMATCHED_HOST: &str = "no-route.colormesh.invalid";

/// One request of the probe set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub method: String,
    /// The Host header; `None`: the ingress address.
    pub host: Option<String>,
    /// Path and query.
    pub path: String,
    /// Extra request headers (names lower case).
    pub headers: BTreeMap<String, String>,
}

impl Probe {
    #[cfg(test)]
    pub(crate) fn default_get() -> Self {
        Self::get("/")
    }

    fn get(path: impl Into<String>) -> Self {
        Self {
            method: "GET".into(),
            host: None,
            path: path.into(),
            headers: BTreeMap::new(),
        }
    }

    /// The path without the query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or(&self.path)
    }

    /// `GET host/path -H name: value`, for reports.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} {}{}",
            self.method,
            self.host.as_deref().unwrap_or(""),
            self.path
        );
        for (name, value) in &self.headers {
            text.push_str(&format!(" -H '{name}: {value}'"));
        }
        text
    }
}

/// A probe and why it is in the set.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedProbe {
    pub probe: Probe,
    /// The boundary it tests (`prefix + glued suffix`, `header x absent`, ...).
    pub purpose: String,
    /// The route it was derived from (the route's source), or [`GENERAL`].
    pub route: String,
    /// Other routes that gave the same request.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_from: Vec<String>,
}

/// The longest timeout a timeout probe is sent for: the probe waits for the teller's `Latency`.
const MAX_PROBED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Builds the probe set from both sides' routes; one probe per distinct request.
pub fn plan_probes(routes: &[&RouteInfo]) -> Vec<PlannedProbe> {
    let mut index: BTreeMap<Probe, usize> = BTreeMap::new();
    let mut planned: Vec<PlannedProbe> = Vec::new();
    let mut add = |probe: Probe, purpose: String, route: &str| {
        if let Some(&at) = index.get(&probe) {
            let entry = &mut planned[at];
            if entry.route != route && !entry.also_from.iter().any(|r| r == route) {
                entry.also_from.push(route.to_owned());
            }
            return;
        }
        index.insert(probe.clone(), planned.len());
        planned.push(PlannedProbe {
            probe,
            purpose,
            route: route.to_owned(),
            also_from: Vec::new(),
        });
    };
    add(Probe::get("/"), "root".into(), GENERAL);
    add(
        Probe::get("/colormesh-unrouted"),
        "a path no route names".into(),
        GENERAL,
    );
    for route in routes {
        let source = route.source.as_str();
        let host = route.a_host();
        for rule in &route.matches {
            for (path, purpose) in path_probes(rule) {
                let mut probe = base_probe(rule, &path, host.clone());
                if !rule.methods.is_empty() {
                    probe.method = rule.methods[0].to_ascii_uppercase();
                }
                add(probe, purpose, source);
            }
            let base = rule_base_path(rule);
            for (index, (name, value)) in rule.headers.iter().enumerate() {
                let mut absent = base_probe(rule, &base, host.clone());
                absent.headers.remove(name);
                add(absent, format!("header {name} absent"), source);
                let mut other = base_probe(rule, &base, host.clone());
                other.headers.insert(name.clone(), "colormesh-other".into());
                add(other, format!("header {name} with another value"), source);
                if value.is_none() && index == 0 {
                    let present = base_probe(rule, &base, host.clone());
                    add(present, format!("header {name} present"), source);
                }
            }
            for (name, _) in &rule.query {
                let mut absent = base_probe(rule, &base, host.clone());
                absent.path = base.clone();
                let other_rule = MatchRule {
                    query: rule
                        .query
                        .iter()
                        .filter(|(n, _)| n != name)
                        .cloned()
                        .collect(),
                    ..rule.clone()
                };
                absent.path = with_query(&base, &other_rule.query);
                add(absent, format!("query {name} absent"), source);
                let mut other = base_probe(rule, &base, host.clone());
                other.path = with_query(
                    &base,
                    &rule
                        .query
                        .iter()
                        .map(|(n, v)| {
                            if n == name {
                                (n.clone(), Some("colormesh-other".to_owned()))
                            } else {
                                (n.clone(), v.clone())
                            }
                        })
                        .collect::<Vec<_>>(),
                );
                add(other, format!("query {name} with another value"), source);
            }
            let methods: Vec<String> = if rule.methods.is_empty() {
                vec!["POST".into()]
            } else {
                let mut m: Vec<String> = rule
                    .methods
                    .iter()
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                m.push(
                    ["GET", "POST", "DELETE"]
                        .into_iter()
                        .find(|x| !m.iter().any(|y| y == x))
                        .unwrap_or("PATCH")
                        .into(),
                );
                m
            };
            for method in methods {
                let mut probe = base_probe(rule, &base, host.clone());
                probe.method = method.clone();
                add(probe, format!("method {method}"), source);
            }
        }
        // A configured timeout: the teller is asked (its `Latency` header) to answer a second
        // after it; a backend that ignores the header answers at once on both sides.
        if let Some(timeout) = route.shortest_timeout.filter(|t| *t <= MAX_PROBED_TIMEOUT) {
            let rule = route.matches.first().cloned().unwrap_or_default();
            let mut probe = base_probe(&rule, &rule_base_path(&rule), host.clone());
            let delay = timeout + std::time::Duration::from_secs(1);
            probe
                .headers
                .insert("latency".into(), format!("{}ms", delay.as_millis()));
            add(
                probe,
                format!("timeout {timeout:?}: a backend {delay:?} late"),
                source,
            );
        }
        // The hosts: each one the route names, and one it does not.
        let first = route.matches.first();
        let base = first.map(rule_base_path).unwrap_or_else(|| "/".into());
        let empty = MatchRule::default();
        for pattern in &route.hosts {
            if let Some(h) = concrete_host(pattern) {
                add(
                    base_probe(first.unwrap_or(&empty), &base, Some(h.clone())),
                    format!("host {h}"),
                    source,
                );
            }
        }
        add(
            base_probe(first.unwrap_or(&empty), &base, Some(UNMATCHED_HOST.into())),
            "a host no route names".into(),
            source,
        );
    }
    planned
}

/// The path a matcher certainly matches (its prefix or exact value), with its query values.
fn rule_base_path(rule: &MatchRule) -> String {
    let path = match &rule.path {
        Some(PathRule::Prefix(p) | PathRule::Exact(p)) if !p.is_empty() => p.clone(),
        _ => "/".into(),
    };
    with_query(&path, &rule.query)
}

fn with_query(path: &str, query: &[(String, Option<String>)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let pairs: Vec<String> = query
        .iter()
        .map(|(n, v)| format!("{n}={}", v.as_deref().unwrap_or("colormesh")))
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// A request that satisfies the matcher's headers and query, at `path`.
fn base_probe(rule: &MatchRule, path: &str, host: Option<String>) -> Probe {
    let mut probe = Probe::get(path);
    if !path.contains('?') && !rule.query.is_empty() {
        probe.path = with_query(path, &rule.query);
    }
    probe.host = host;
    for (name, value) in &rule.headers {
        probe.headers.insert(
            name.clone(),
            value.clone().unwrap_or_else(|| "colormesh".into()),
        );
    }
    if let Some(method) = rule.methods.first() {
        probe.method = method.to_ascii_uppercase();
    }
    probe
}

/// The paths at a matcher's boundaries, each with what it tests.
fn path_probes(rule: &MatchRule) -> Vec<(String, String)> {
    let mut paths = Vec::new();
    match &rule.path {
        Some(PathRule::Prefix(p)) if !p.is_empty() => {
            paths.push((p.clone(), format!("prefix {p} itself")));
            if p.ends_with('/') {
                paths.push((format!("{p}x"), format!("prefix {p} + a path element")));
                if p.len() > 1 {
                    paths.push((
                        p.trim_end_matches('/').to_owned(),
                        format!("prefix {p} without its slash"),
                    ));
                }
            } else {
                paths.push((format!("{p}/"), format!("prefix {p} + /")));
                paths.push((format!("{p}ful"), format!("prefix {p} + a glued suffix")));
                paths.push((format!("{p}/x"), format!("prefix {p} + a path element")));
                paths.push((format!("{p}/clear"), format!("prefix {p} + /clear")));
                paths.push((
                    format!("{p}//x"),
                    format!("prefix {p} + an empty path element"),
                ));
                paths.push((
                    format!("{p}/x?colormesh=1"),
                    format!("prefix {p} + a path element and a query"),
                ));
                if let Some(encoded) = percent_encode_last(p) {
                    paths.push((
                        encoded,
                        format!("prefix {p} with its last character percent-encoded"),
                    ));
                }
                if p.len() > 2 {
                    paths.push((
                        p[..p.len() - 1].to_owned(),
                        format!("prefix {p} minus its last character"),
                    ));
                }
            }
            let upper = p.to_ascii_uppercase();
            if upper != *p {
                paths.push((upper, format!("prefix {p} in upper case")));
            }
            paths.push((
                format!("{p}?colormesh=1"),
                format!("prefix {p} with a query"),
            ));
        }
        Some(PathRule::Exact(p)) => {
            paths.push((p.clone(), format!("exact {p} itself")));
            paths.push((format!("{p}/"), format!("exact {p} + /")));
            paths.push((format!("{p}x"), format!("exact {p} + a glued suffix")));
            let upper = p.to_ascii_uppercase();
            if upper != *p {
                paths.push((upper, format!("exact {p} in upper case")));
            }
            paths.push((
                format!("{p}?colormesh=1"),
                format!("exact {p} with a query"),
            ));
        }
        Some(PathRule::Regex(r)) => {
            paths.push(("/".into(), format!("regex {r}: the root")));
        }
        _ => {
            paths.push(("/".into(), "any path: the root".into()));
            paths.push(("/x/y".into(), "any path: two elements".into()));
        }
    }
    paths
}

/// The path with its last character percent-encoded (`/appmesh/colo%72`), when it is a letter.
fn percent_encode_last(path: &str) -> Option<String> {
    let last = path.chars().last().filter(char::is_ascii_alphanumeric)?;
    Some(format!("{}%{:02X}", &path[..path.len() - 1], last as u32))
}

/// What one side did with one probe, normalized for comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// The status, or the transport error.
    pub status: String,
    /// Reply headers (lower-case names), without hop-by-hop ones, `date`, `content-length`,
    /// the generation, timing and the echo's own.
    pub headers: BTreeMap<String, String>,
    /// The body, for replies the gateway or backend answered with an error (non-2xx); 2xx bodies
    /// carry random picks (the color) and are left out.
    pub body: Option<String>,
    /// What the backend saw (the echo), when a backend answered.
    pub seen_path: Option<String>,
    pub seen_host: Option<String>,
    pub seen_headers: BTreeMap<String, String>,
    /// The workload that answered, or its class (the deployments one weighted route splits
    /// over, `a|b`): which one of them answered is the split check's business.
    pub served_by: Option<String>,
}

/// Reply headers left out of the comparison.
const IGNORED_REPLY_HEADERS: [&str; 14] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "date",
    "content-length",
    "x-colormesh-generation",
    "x-envoy-upstream-service-time",
    "x-request-id",
    "server",
    // X-Ray: a fresh trace id on every request.
    "x-amzn-trace-id",
];

/// Request headers the backend saw that differ on every request.
const IGNORED_SEEN_HEADERS: [&str; 4] = [
    "x-request-id",
    "traceparent",
    "x-forwarded-for",
    "x-amzn-trace-id",
];

/// Normalizes a reply; `classes` maps a deployment to its served-by class.
pub fn observe(
    reply: Result<&crate::traffic::Response, String>,
    classes: &BTreeMap<String, String>,
) -> Observation {
    let response = match reply {
        Ok(response) => response,
        Err(error) => {
            return Observation {
                status: format!("error: {error}"),
                ..Observation::default()
            };
        }
    };
    let text = |name: &str| {
        response
            .headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let mut headers = BTreeMap::new();
    for (name, value) in &response.headers {
        let name = name.as_str();
        if IGNORED_REPLY_HEADERS.contains(&name)
            || name.starts_with("x-colormesh-seen-")
            || name == service_kit::SERVED_BY
        {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.to_owned())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let seen_headers: BTreeMap<String, String> = text(service_kit::SEEN_HEADERS)
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default();
    let seen_headers = seen_headers
        .into_iter()
        .filter(|(name, _)| !IGNORED_SEEN_HEADERS.contains(&name.as_str()))
        .collect();
    let served_by = text(service_kit::SERVED_BY).map(|s| classes.get(&s).cloned().unwrap_or(s));
    Observation {
        status: response.status.as_u16().to_string(),
        headers,
        body: (!response.status.is_success())
            .then(|| String::from_utf8_lossy(&response.body).into_owned()),
        seen_path: text(service_kit::SEEN_PATH),
        seen_host: text(service_kit::SEEN_HOST).map(|h| normalize_host(&h)),
        seen_headers,
        served_by,
    }
}

/// The Host a backend saw, without the ingress's ephemeral port (the two sides listen on
/// different ports).
fn normalize_host(host: &str) -> String {
    match host.rsplit_once(':') {
        Some((name, port)) if name == "127.0.0.1" && port.bytes().all(|b| b.is_ascii_digit()) => {
            "127.0.0.1:<ingress port>".into()
        }
        _ => host.to_owned(),
    }
}

/// One field that differs between the two sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDifference {
    pub field: String,
    pub before: String,
    pub after: String,
}

/// The fields in which two observations differ.
pub fn compare(before: &Observation, after: &Observation) -> Vec<FieldDifference> {
    let mut diffs = Vec::new();
    let mut field = |name: &str, b: String, a: String| {
        if b != a {
            diffs.push(FieldDifference {
                field: name.to_owned(),
                before: b,
                after: a,
            });
        }
    };
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    field("status", before.status.clone(), after.status.clone());
    let names: BTreeSet<&String> = before.headers.keys().chain(after.headers.keys()).collect();
    for name in names {
        field(
            &format!("reply header {name}"),
            opt(&before.headers.get(name).cloned()),
            opt(&after.headers.get(name).cloned()),
        );
    }
    field("body", opt(&before.body), opt(&after.body));
    field(
        "backend saw path",
        opt(&before.seen_path),
        opt(&after.seen_path),
    );
    field(
        "backend saw host",
        opt(&before.seen_host),
        opt(&after.seen_host),
    );
    let names: BTreeSet<&String> = before
        .seen_headers
        .keys()
        .chain(after.seen_headers.keys())
        .collect();
    for name in names {
        field(
            &format!("backend saw header {name}"),
            opt(&before.seen_headers.get(name).cloned()),
            opt(&after.seen_headers.get(name).cloned()),
        );
    }
    field("served by", opt(&before.served_by), opt(&after.served_by));
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::equivalence::config::RouteFlavor;

    fn prefix_route(prefix: &str) -> RouteInfo {
        RouteInfo {
            flavor: RouteFlavor::Gloo,
            source: "vs".into(),
            matches: vec![MatchRule {
                path: Some(PathRule::Prefix(prefix.into())),
                case_sensitive: true,
                headers: vec![("x-canary".into(), Some("yes".into()))],
                ..MatchRule::default()
            }],
            hosts: vec!["*".into(), "colors.example.com".into()],
            weighted: Vec::new(),
            deployments: BTreeSet::new(),
            retry: None,
            timeout: None,
            shortest_timeout: Some(std::time::Duration::from_secs(2)),
        }
    }

    #[test]
    fn a_prefix_gets_its_boundaries_headers_methods_and_hosts() {
        let route = prefix_route("/appmesh/color");
        let probes = plan_probes(&[&route]);
        let paths: BTreeSet<&str> = probes.iter().map(|p| p.probe.path.as_str()).collect();
        for path in [
            "/appmesh/color",
            "/appmesh/color/",
            "/appmesh/colorful",
            "/appmesh/color/x",
            "/APPMESH/COLOR",
            "/appmesh/color?colormesh=1",
            "/appmesh/colo",
            "/",
        ] {
            assert!(paths.contains(path), "{path} missing from {paths:?}");
        }
        assert!(
            probes
                .iter()
                .any(|p| !p.probe.headers.contains_key("x-canary"))
        );
        assert!(probes.iter().any(|p| {
            p.probe
                .headers
                .get("x-canary")
                .is_some_and(|v| v == "colormesh-other")
        }));
        assert!(probes.iter().any(|p| p.probe.method == "POST"));
        assert!(paths.contains("/appmesh/colo%72"));
        assert!(probes.iter().any(|p| {
            p.probe
                .headers
                .get("latency")
                .is_some_and(|v| v == "3000ms")
        }));
        assert!(
            probes
                .iter()
                .any(|p| p.probe.host.as_deref() == Some("colors.example.com"))
        );
        assert!(
            probes
                .iter()
                .any(|p| p.probe.host.as_deref() == Some(UNMATCHED_HOST))
        );
        let distinct: BTreeSet<&Probe> = probes.iter().map(|p| &p.probe).collect();
        assert_eq!(distinct.len(), probes.len(), "no probe twice");
    }

    #[test]
    fn observations_differ_only_where_it_matters() {
        let base = Observation {
            status: "200".into(),
            seen_path: Some("/color".into()),
            served_by: Some("a|b".into()),
            ..Observation::default()
        };
        assert!(compare(&base, &base.clone()).is_empty());
        let other = Observation {
            seen_path: Some("/colour".into()),
            ..base.clone()
        };
        let diffs = compare(&base, &other);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].field, "backend saw path");
        assert_eq!(normalize_host("127.0.0.1:4567"), "127.0.0.1:<ingress port>");
        assert_eq!(normalize_host("example.com"), "example.com");
    }
}

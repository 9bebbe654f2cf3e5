//! The drift report: what a migration changed, construct by construct, and which requests
//! behave differently because of it.
//!
//! Written as `drift-report.json` next to the migrated manifests (and rendered for people as
//! `drift-report.md`); `DriftReport::predicts` is how the equivalence gate decides whether an
//! observed difference was announced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name of the report in a migration's output folder.
pub const DRIFT_REPORT_FILE: &str = "drift-report.json";

/// How one construct of the old configuration was carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mapping {
    /// The new resources behave exactly as the old ones for every request; the item says how
    /// (for example an App Mesh default written out as an explicit retry).
    Exact,
    /// Carried over, but some requests behave differently: listed in `affects`.
    Approximate,
    /// Not carried over at all: the target API cannot express it.
    Unmappable,
}

/// What kind of difference an item describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DriftKind {
    /// Gloo's (and App Mesh's) string prefix match against Gateway API's element-wise
    /// `PathPrefix`: `/appmesh/color` also matched `/appmesh/colorful` before.
    PrefixMatch,
    /// A string prefix rewrite against element-wise `ReplacePrefixMatch`.
    PrefixRewrite,
    /// First match in list order (Gloo) against Gateway API's precedence rules.
    RouteOrder,
    /// App Mesh's implicit retries and timeout, made explicit or not expressible.
    ImplicitDefault,
    /// A retry policy (explicit in the source).
    Retry,
    /// A timeout (explicit in the source).
    Timeout,
    /// Weighted destinations (an UpstreamGroup, weighted targets).
    Weights,
    /// Header, query or method matching.
    Match,
    /// Header manipulation.
    Headers,
    /// Anything else the target cannot express.
    Other,
    /// Where traffic goes: a Gloo upstream or an App Mesh virtual node resolved to a Service
    /// backendRef, and the ReferenceGrants a cross-namespace reference needs.
    Backend,
    /// Which hosts a route serves: Gloo domains against HTTPRoute hostnames.
    Hostname,
    /// Mesh membership: which workloads the mesh's routes apply to (namespace labels, App Mesh
    /// virtual node backends, the egress filter).
    Mesh,
}

/// A set of requests, as predicates on the method, host and path (without the query). Every
/// present field must hold; absent fields hold for every request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestPattern {
    /// The request's method (upper case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The Host, without port; `None` for any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The path starts with this string (a string prefix, not element-wise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// The path is exactly this (added after the first version: absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_exact: Option<String>,
    /// ... but is none of these paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path_not_exact: Vec<String>,
    /// ... and starts with none of these strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path_not_prefix: Vec<String>,
    /// The request carries these headers with these values (names lower case).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl RequestPattern {
    /// The requests a string prefix matches that the element-wise `PathPrefix` of the same value
    /// does not: the prefix with something glued on (`/appmesh/colorful`). Empty when the prefix
    /// ends with `/`, where the two agree.
    pub fn glued_to_prefix(prefix: &str) -> Option<Self> {
        if prefix.ends_with('/') {
            return None;
        }
        Some(Self {
            path_prefix: Some(prefix.to_owned()),
            path_not_exact: vec![prefix.to_owned()],
            path_not_prefix: vec![format!("{prefix}/")],
            ..Self::default()
        })
    }

    /// Whether a request with this method, host and path (query excluded) is in the set.
    pub fn matches(
        &self,
        method: &str,
        host: &str,
        path: &str,
        headers: &BTreeMap<String, String>,
    ) -> bool {
        let host = host.split(':').next().unwrap_or(host);
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .host
                .as_deref()
                .is_none_or(|h| h.eq_ignore_ascii_case(host))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
            && self.path_exact.as_deref().is_none_or(|p| p == path)
            && !self.path_not_exact.iter().any(|p| p == path)
            && !self
                .path_not_prefix
                .iter()
                .any(|p| path.starts_with(p.as_str()))
            && self.headers.iter().all(|(name, value)| {
                headers
                    .iter()
                    .any(|(n, v)| n.eq_ignore_ascii_case(name) && v == value)
            })
    }
}

/// A request that shows a difference, for people reading the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExampleRequest {
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Path and query.
    pub path: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// One construct of the source and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DriftItem {
    /// Stable within a report: `<kind>:<source>`.
    pub id: String,
    pub kind: DriftKind,
    pub mapping: Mapping,
    /// The source construct: file, resource and field (`manifests/gloo/vs.yaml: VirtualService
    /// gloo-system/colorgateway spec.virtualHost.routes[0].matchers[0].prefix`).
    pub source: String,
    /// What it became, the same way; `None` when unmappable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What changes, in a sentence or two; for `Exact`, how the target expresses the old
    /// behaviour.
    pub description: String,
    /// The requests that behave differently (empty for `Exact`). For retries and timeouts the
    /// difference shows only when the backend fails or is slow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affects: Vec<RequestPattern>,
    /// Examples from `affects`, with what happened before and what happens after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<ExampleRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Everything one migration changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DriftReport {
    /// The files the migration read.
    pub sources: Vec<PathBuf>,
    /// The target dialect (`gateway-api`).
    pub target: String,
    pub items: Vec<DriftItem>,
}

/// Why a drift report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DriftReportError {
    #[error("reading the drift report {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the drift report {} is not valid: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl DriftReport {
    /// Reads `drift-report.json` from a migration's output folder, if there is one.
    pub fn read_from(dir: &Path) -> Result<Option<Self>, DriftReportError> {
        let path = dir.join(DRIFT_REPORT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(DriftReportError::Read { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| DriftReportError::Parse { path, source })
    }

    /// The items that announce a different behaviour for this request (every item but `Exact`
    /// ones whose `affects` holds it), optionally of one kind only.
    pub fn predicts<'a>(
        &'a self,
        kind: Option<DriftKind>,
        method: &'a str,
        host: &'a str,
        path: &'a str,
        headers: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a DriftItem> + 'a {
        self.items.iter().filter(move |item| {
            item.mapping != Mapping::Exact
                && kind.is_none_or(|k| k == item.kind)
                && item
                    .affects
                    .iter()
                    .any(|pattern| pattern.matches(method, host, path, headers))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glued_suffix_is_what_a_string_prefix_adds() {
        let glued = RequestPattern::glued_to_prefix("/appmesh/color").expect("no trailing slash");
        let none = BTreeMap::new();
        let hit = |path: &str| glued.matches("GET", "example.com", path, &none);
        assert!(hit("/appmesh/colorful"));
        assert!(hit("/appmesh/color2/x"));
        assert!(!hit("/appmesh/color"));
        assert!(!hit("/appmesh/color/"));
        assert!(!hit("/appmesh/color/x"));
        assert!(!hit("/appmesh/colo"));
        assert!(RequestPattern::glued_to_prefix("/appmesh/").is_none());
    }

    #[test]
    fn an_exact_path_pattern_holds_for_that_path_only() {
        let exact = RequestPattern {
            path_exact: Some("/a/b".into()),
            ..RequestPattern::default()
        };
        let none = BTreeMap::new();
        assert!(exact.matches("GET", "h", "/a/b", &none));
        assert!(!exact.matches("GET", "h", "/a/b/", &none));
        assert!(!exact.matches("GET", "h", "/a", &none));
        let old: RequestPattern =
            serde_json::from_str(r#"{"pathPrefix":"/a"}"#).expect("an older pattern parses");
        assert_eq!(old.path_exact, None);
    }

    #[test]
    fn predictions_need_a_matching_pattern_and_skip_exact_items() {
        let item = |mapping| DriftItem {
            id: "prefixMatch:vs".into(),
            kind: DriftKind::PrefixMatch,
            mapping,
            source: "vs".into(),
            target: None,
            description: String::new(),
            affects: vec![RequestPattern::glued_to_prefix("/a").expect("pattern")],
            examples: Vec::new(),
            before: None,
            after: None,
        };
        let report = DriftReport {
            sources: Vec::new(),
            target: "gateway-api".into(),
            items: vec![item(Mapping::Approximate), item(Mapping::Exact)],
        };
        let none = BTreeMap::new();
        assert_eq!(report.predicts(None, "GET", "h", "/ab", &none).count(), 1);
        assert_eq!(
            report
                .predicts(Some(DriftKind::Weights), "GET", "h", "/ab", &none)
                .count(),
            0
        );
        assert_eq!(report.predicts(None, "GET", "h", "/a/b", &none).count(), 0);
        let json = serde_json::to_string(&report).expect("serializes");
        let back: DriftReport = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, report);
    }
}

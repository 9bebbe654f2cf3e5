//! Path semantics on both sides: string prefixes and string prefix rewrites (Gloo, App Mesh)
//! against Gateway API's element-wise `PathPrefix` and `ReplacePrefixMatch`; request patterns for
//! the paths a match selects; Gateway API durations.

use std::collections::BTreeMap;
use std::time::Duration;

use model::gateway_api::{
    GatewayDuration, HttpMethod, HttpRouteMatch, PathMatchType, ValueMatchType,
};

use crate::drift::RequestPattern;

/// The patterns for the paths an element-wise `PathPrefix` selects: the prefix itself and
/// everything below it (`/a/b` and `/a/b/...`); every path for `/`. A trailing slash is ignored,
/// as the spec says.
pub(crate) fn element_prefix_patterns(prefix: &str) -> Vec<RequestPattern> {
    let base = prefix.trim_end_matches('/');
    if base.is_empty() {
        return vec![RequestPattern {
            path_prefix: Some("/".into()),
            ..RequestPattern::default()
        }];
    }
    vec![
        RequestPattern {
            path_exact: Some(base.to_owned()),
            ..RequestPattern::default()
        },
        RequestPattern {
            path_prefix: Some(format!("{base}/")),
            ..RequestPattern::default()
        },
    ]
}

/// Whether an element-wise `PathPrefix` selects the path (query excluded).
pub(crate) fn element_prefix_matches(prefix: &str, path: &str) -> bool {
    let base = prefix.trim_end_matches('/');
    base.is_empty()
        || path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Whether every path the element-wise prefix `inner` selects is selected by `outer`.
pub(crate) fn element_prefix_within(inner: &str, outer: &str) -> bool {
    element_prefix_matches(outer, inner.trim_end_matches('/'))
        || inner.trim_end_matches('/').is_empty() && outer.trim_end_matches('/').is_empty()
}

/// The path Gloo (Envoy's `prefix_rewrite`) sends upstream: the matched string prefix swapped for
/// the rewrite.
pub(crate) fn string_rewrite(prefix: &str, rewrite: &str, path: &str) -> Option<String> {
    path.strip_prefix(prefix)
        .map(|rest| format!("{rewrite}{rest}"))
}

/// The path Gateway API's `ReplacePrefixMatch` sends upstream for a `PathPrefix` match
/// (element-wise; slashes between the replacement and the rest are never doubled).
pub(crate) fn element_rewrite(prefix: &str, rewrite: &str, path: &str) -> Option<String> {
    if !element_prefix_matches(prefix, path) {
        return None;
    }
    let base = prefix.trim_end_matches('/');
    let rest = &path[base.len()..];
    let replacement = rewrite.trim_end_matches('/');
    let joined = match (replacement.is_empty(), rest.is_empty()) {
        (true, true) => "/".to_owned(),
        (true, false) => rest.to_owned(),
        (false, true) if rewrite.ends_with('/') && rewrite.len() > 1 => format!("{replacement}/"),
        (false, _) => format!("{replacement}{rest}"),
    };
    Some(joined)
}

/// The spec's precedence key of a match, greater first, as colormesh's translator and Envoy
/// Gateway order them: path type (Exact, RegularExpression, PathPrefix), the path's length, a
/// method, the number of header matches, the number of query matches.
pub(crate) type Rank = (u8, usize, bool, usize, usize);

pub(crate) fn rank(m: &HttpRouteMatch) -> Rank {
    let kind = match m.path.match_type {
        PathMatchType::Exact => 2,
        PathMatchType::RegularExpression => 1,
        PathMatchType::PathPrefix => 0,
    };
    (
        kind,
        m.path.value.chars().count(),
        m.method.is_some(),
        m.headers.len(),
        m.query_params.len(),
    )
}

/// Whether a Gateway API match selects this request (the path may carry a query).
pub(crate) fn gateway_match(
    m: &HttpRouteMatch,
    method: &str,
    path_and_query: &str,
    headers: &BTreeMap<String, String>,
) -> bool {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let path_ok = match m.path.match_type {
        PathMatchType::Exact => path == m.path.value,
        PathMatchType::PathPrefix => element_prefix_matches(&m.path.value, path),
        PathMatchType::RegularExpression => full_match(&m.path.value, path),
    };
    let method_ok = m
        .method
        .is_none_or(|wanted: HttpMethod| wanted.as_str().eq_ignore_ascii_case(method));
    let value_ok = |kind: ValueMatchType, wanted: &str, actual: Option<&str>| match (kind, actual) {
        (_, None) => false,
        (ValueMatchType::Exact, Some(actual)) => actual == wanted,
        (ValueMatchType::RegularExpression, Some(actual)) => full_match(wanted, actual),
    };
    let headers_ok = m.headers.iter().all(|h| {
        let actual = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&h.name))
            .map(|(_, v)| v.as_str());
        value_ok(h.match_type, &h.value, actual)
    });
    let query_ok = m.query_params.iter().all(|q| {
        let actual = query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(name, _)| *name == q.name)
            .map(|(_, v)| v);
        value_ok(q.match_type, &q.value, actual)
    });
    path_ok && method_ok && headers_ok && query_ok
}

fn full_match(pattern: &str, text: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(text))
}

/// The overlap of two matches' paths as request patterns: `Some(patterns)` when they may select
/// the same requests (an over-approximation where a regex is involved), `None` when they cannot.
pub(crate) fn path_overlap(a: &HttpRouteMatch, b: &HttpRouteMatch) -> Option<Vec<RequestPattern>> {
    use PathMatchType::{Exact, PathPrefix, RegularExpression};
    let exact = |path: &str| {
        vec![RequestPattern {
            path_exact: Some(path.to_owned()),
            ..RequestPattern::default()
        }]
    };
    let (pa, pb) = (&a.path.value, &b.path.value);
    match (a.path.match_type, b.path.match_type) {
        (Exact, Exact) => (pa == pb).then(|| exact(pa)),
        (Exact, PathPrefix) => element_prefix_matches(pb, pa).then(|| exact(pa)),
        (PathPrefix, Exact) => element_prefix_matches(pa, pb).then(|| exact(pb)),
        (PathPrefix, PathPrefix) => {
            if element_prefix_within(pb, pa) {
                Some(element_prefix_patterns(pb))
            } else if element_prefix_within(pa, pb) {
                Some(element_prefix_patterns(pa))
            } else {
                None
            }
        }
        (RegularExpression, Exact) => full_match(pa, pb).then(|| exact(pb)),
        (Exact, RegularExpression) => full_match(pb, pa).then(|| exact(pa)),
        (RegularExpression, PathPrefix) => Some(element_prefix_patterns(pb)),
        (PathPrefix, RegularExpression) => Some(element_prefix_patterns(pa)),
        (RegularExpression, RegularExpression) => Some(vec![RequestPattern::default()]),
    }
}

/// The overlap of two matches: their paths, a method both allow and the exact header values both
/// require (regex conditions and query parameters are left out, so the patterns may hold more
/// requests than the overlap). `None` when no request matches both.
pub(crate) fn overlap(a: &HttpRouteMatch, b: &HttpRouteMatch) -> Option<Vec<RequestPattern>> {
    let paths = path_overlap(a, b)?;
    let method = match (a.method, b.method) {
        (Some(x), Some(y)) if x != y => return None,
        (x, y) => x.or(y).map(|m| m.as_str().to_owned()),
    };
    let mut headers = BTreeMap::new();
    for h in a.headers.iter().chain(&b.headers) {
        if h.match_type != ValueMatchType::Exact {
            continue;
        }
        let name = h.name.to_ascii_lowercase();
        if let Some(existing) = headers.insert(name, h.value.clone())
            && existing != h.value
        {
            return None;
        }
    }
    for q in &a.query_params {
        if let Some(other) = b.query_params.iter().find(|o| o.name == q.name)
            && q.match_type == ValueMatchType::Exact
            && other.match_type == ValueMatchType::Exact
            && q.value != other.value
        {
            return None;
        }
    }
    Some(
        paths
            .into_iter()
            .map(|p| RequestPattern {
                method: method.clone(),
                headers: headers.clone(),
                ..p
            })
            .collect(),
    )
}

/// A path glued to a string prefix (`/appmesh/color` → `/appmesh/colorful`).
pub(crate) fn glued_example(prefix: &str) -> String {
    if prefix.ends_with(|c: char| c.is_ascii_alphabetic()) {
        format!("{prefix}ful")
    } else {
        format!("{prefix}x")
    }
}

/// A Gateway API duration for a standard one: `Ok` when exact, `Err` with the nearest (rounded up
/// to the millisecond, or capped at the largest the format allows) otherwise.
pub(crate) fn gateway_duration(duration: Duration) -> Result<GatewayDuration, GatewayDuration> {
    let mut exact = duration.subsec_nanos().is_multiple_of(1_000_000);
    let mut millis = duration.as_millis();
    if !exact {
        millis += 1;
    }
    const LIMIT: u128 = 99_999 * 3_600_000;
    if millis > LIMIT {
        millis = LIMIT;
        exact = false;
    }
    let parts = [
        (millis / 3_600_000, "h"),
        (millis / 60_000 % 60, "m"),
        (millis / 1000 % 60, "s"),
        (millis % 1000, "ms"),
    ];
    let mut text: String = parts
        .iter()
        .filter(|(value, _)| *value > 0)
        .map(|(value, unit)| format!("{value}{unit}"))
        .collect();
    if text.is_empty() {
        text = "0s".to_owned();
    }
    let duration = GatewayDuration::try_from(text)
        .unwrap_or_else(|_| GatewayDuration::try_from("0s".to_owned()).expect("0s is a duration"));
    if exact { Ok(duration) } else { Err(duration) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::gateway_api::HttpPathMatch;

    fn prefix(value: &str) -> HttpRouteMatch {
        HttpRouteMatch {
            path: HttpPathMatch {
                match_type: PathMatchType::PathPrefix,
                value: value.into(),
            },
            ..HttpRouteMatch::default()
        }
    }

    #[test]
    fn element_prefixes_respect_path_elements() {
        assert!(element_prefix_matches("/a", "/a"));
        assert!(element_prefix_matches("/a", "/a/b"));
        assert!(!element_prefix_matches("/a", "/ab"));
        assert!(element_prefix_matches("/a/", "/a"));
        assert!(element_prefix_matches("/", "/anything"));
        assert!(element_prefix_within("/a/b", "/a"));
        assert!(!element_prefix_within("/ab", "/a"));
        assert!(!element_prefix_within("/a", "/a/b"));
    }

    #[test]
    fn rewrites_agree_below_the_prefix_and_differ_where_slashes_do() {
        let both = |prefix, rewrite, path| {
            (
                string_rewrite(prefix, rewrite, path),
                element_rewrite(prefix, rewrite, path),
            )
        };
        let same = |p: (Option<String>, Option<String>)| p.0 == p.1;
        assert!(same(both("/appmesh/color", "/color", "/appmesh/color")));
        assert!(same(both("/appmesh/color", "/color", "/appmesh/color/x")));
        assert_eq!(
            both("/appmesh/color", "/color", "/appmesh/colorful"),
            (Some("/colorful".into()), None)
        );
        assert_eq!(
            both("/api/", "/v2", "/api/x"),
            (Some("/v2x".into()), Some("/v2/x".into()))
        );
        assert_eq!(
            both("/api", "/v2/", "/api/x"),
            (Some("/v2//x".into()), Some("/v2/x".into()))
        );
        assert_eq!(element_rewrite("/api", "/", "/api"), Some("/".into()));
        assert_eq!(element_rewrite("/api", "/", "/api/x"), Some("/x".into()));
    }

    #[test]
    fn overlaps_follow_the_narrower_prefix() {
        let patterns = overlap(&prefix("/a"), &prefix("/a/b")).expect("overlap");
        assert_eq!(patterns, element_prefix_patterns("/a/b"));
        assert!(overlap(&prefix("/a"), &prefix("/ab")).is_none());
        assert!(overlap(&prefix("/a/c"), &prefix("/a/b")).is_none());
    }

    #[test]
    fn durations_use_the_largest_units() {
        let text = |d| match gateway_duration(d) {
            Ok(d) => (d.as_str().to_owned(), true),
            Err(d) => (d.as_str().to_owned(), false),
        };
        assert_eq!(text(Duration::from_secs(15)), ("15s".into(), true));
        assert_eq!(text(Duration::from_millis(1500)), ("1s500ms".into(), true));
        assert_eq!(text(Duration::from_secs(3661)), ("1h1m1s".into(), true));
        assert_eq!(text(Duration::ZERO), ("0s".into(), true));
        assert_eq!(text(Duration::from_micros(1500)), ("2ms".into(), false));
    }
}

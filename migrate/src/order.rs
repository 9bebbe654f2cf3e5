//! Route order: Gloo and App Mesh take the first route that matches, in list (or priority) order;
//! Gateway API takes the match with the highest precedence (exact path, longest prefix, method,
//! headers, query parameters), whatever the order. Where a later route outranks an earlier one that
//! matches the same requests, those requests change route.

use std::collections::BTreeMap;

use model::gateway_api::HttpRouteMatch;

use crate::context::Item;
use crate::drift::{DriftKind, Mapping, RequestPattern};
use crate::paths::{overlap, rank};

/// One match of the new configuration, with the source route it came from.
#[derive(Debug, Clone)]
pub(crate) struct OrderEntry {
    /// The source route's place in its evaluation order.
    pub(crate) position: usize,
    /// The source route (`file: Kind ns/name field`).
    pub(crate) source: String,
    /// The rule it became (`HTTPRoute ns/name spec.rules[i]`).
    pub(crate) target: String,
    /// The match.
    pub(crate) m: HttpRouteMatch,
}

/// A RouteOrder item for every pair of routes where a later one outranks an earlier one on
/// requests both match. `dialect` names the first-match rule ("Gloo", "App Mesh").
pub(crate) fn route_order_items(
    entries: &[OrderEntry],
    host: Option<&str>,
    dialect: &str,
) -> Vec<Item> {
    let mut items = Vec::new();
    for (i, earlier) in entries.iter().enumerate() {
        for later in &entries[i + 1..] {
            if later.position <= earlier.position || rank(&later.m) <= rank(&earlier.m) {
                continue;
            }
            let Some(patterns) = overlap(&earlier.m, &later.m) else {
                continue;
            };
            // Requests an even earlier route took are not the earlier route's to lose.
            let patterns: Vec<RequestPattern> = patterns
                .into_iter()
                .map(|p| RequestPattern {
                    host: host.map(str::to_owned),
                    ..p
                })
                .collect();
            let example = example_of(&patterns);
            let shadowed = entries[..i].iter().any(|first| {
                first.position < earlier.position
                    && crate::paths::gateway_match(&first.m, &example.0, &example.1, &example.2)
                    && crate::paths::rank(&first.m) >= rank(&later.m)
            });
            if shadowed {
                continue;
            }
            let mut item = Item::new(
                DriftKind::RouteOrder,
                Mapping::Approximate,
                later.source.clone(),
                Some(later.target.clone()),
                format!(
                    "{dialect} takes the first route that matches, so these requests went to the earlier route ({}); Gateway API ranks matches by precedence (exact path, longest prefix, method, headers, query parameters), and this later route's match outranks the earlier one's, so they now go to {} (or to a match that outranks both).",
                    earlier.source, later.target
                ),
            )
            .affects(patterns)
            .before_after(
                format!("taken by {} ({})", earlier.target, earlier.source),
                format!("taken by {}", later.target),
            );
            item.0.examples.push(crate::drift::ExampleRequest {
                method: example.0,
                host: host.map(str::to_owned),
                path: example.1,
                headers: example.2,
            });
            items.push(item);
        }
    }
    items
}

fn example_of(patterns: &[RequestPattern]) -> (String, String, BTreeMap<String, String>) {
    let pattern = patterns.first().cloned().unwrap_or_default();
    let path = pattern
        .path_exact
        .clone()
        .or_else(|| {
            pattern.path_prefix.as_ref().map(|p| {
                if p.ends_with('/') {
                    format!("{p}x")
                } else {
                    format!("{p}/x")
                }
            })
        })
        .unwrap_or_else(|| "/".to_owned());
    (
        pattern.method.clone().unwrap_or_else(|| "GET".to_owned()),
        path,
        pattern.headers.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::gateway_api::{HttpMethod, HttpPathMatch, PathMatchType};

    fn entry(position: usize, match_type: PathMatchType, value: &str) -> OrderEntry {
        OrderEntry {
            position,
            source: format!("route {position}"),
            target: format!("rule {position}"),
            m: HttpRouteMatch {
                path: HttpPathMatch {
                    match_type,
                    value: value.into(),
                },
                ..HttpRouteMatch::default()
            },
        }
    }

    #[test]
    fn a_longer_prefix_after_a_shorter_one_takes_its_requests() {
        let entries = [
            entry(0, PathMatchType::PathPrefix, "/a"),
            entry(1, PathMatchType::PathPrefix, "/a/b"),
        ];
        let items = route_order_items(&entries, None, "Gloo");
        assert_eq!(items.len(), 1);
        let item = &items[0].0;
        let none = BTreeMap::new();
        let hit = |path: &str| {
            item.affects
                .iter()
                .any(|p| p.matches("GET", "h", path, &none))
        };
        assert!(hit("/a/b"));
        assert!(hit("/a/b/c"));
        assert!(!hit("/a/bc"), "element-wise: /a/bc stays on /a");
        assert!(!hit("/a"));
        assert!(!hit("/a/c"));
        assert_eq!(item.examples[0].path, "/a/b");
        assert_eq!(item.target.as_deref(), Some("rule 1"));
    }

    #[test]
    fn routes_already_in_precedence_order_report_nothing() {
        let entries = [
            entry(0, PathMatchType::PathPrefix, "/a/b"),
            entry(1, PathMatchType::PathPrefix, "/a"),
            entry(2, PathMatchType::PathPrefix, "/c"),
        ];
        assert!(route_order_items(&entries, None, "Gloo").is_empty());
    }

    #[test]
    fn an_exact_path_after_a_prefix_and_a_method_after_no_method_are_reported() {
        let entries = [
            entry(0, PathMatchType::PathPrefix, "/api"),
            entry(1, PathMatchType::Exact, "/api/health"),
        ];
        let items = route_order_items(&entries, None, "Gloo");
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].0.affects[0].path_exact.as_deref(),
            Some("/api/health")
        );

        let mut post = entry(1, PathMatchType::PathPrefix, "/api");
        post.m.method = Some(HttpMethod::POST);
        let items = route_order_items(
            &[entry(0, PathMatchType::PathPrefix, "/api"), post],
            None,
            "Gloo",
        );
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].0.affects[0].method.as_deref(), Some("POST"));
        assert_eq!(items[0].0.examples[0].method, "POST");
    }

    #[test]
    fn disjoint_matches_are_not_reported() {
        let mut get = entry(0, PathMatchType::PathPrefix, "/api");
        get.m.method = Some(HttpMethod::GET);
        let mut post = entry(1, PathMatchType::Exact, "/api");
        post.m.method = Some(HttpMethod::POST);
        assert!(route_order_items(&[get, post], None, "Gloo").is_empty());
    }
}

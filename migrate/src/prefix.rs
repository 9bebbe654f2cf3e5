//! The prefix drift: a string prefix (Gloo, App Mesh) against Gateway API's element-wise
//! `PathPrefix`.

use std::collections::BTreeMap;

use model::gateway_api::{HttpRouteMatch, HttpRouteRule, PathMatchType};

use crate::context::{Context, Item, route_target};
use crate::drift::{DriftKind, Mapping, RequestPattern};
use crate::paths::{gateway_match, glued_example};

/// The PrefixMatch items of one match: Gloo's string prefix selects more than `PathPrefix`
/// (`/appmesh/colorful`), and a prefix ending in `/` selects less (not the path without it).
#[allow(clippy::too_many_arguments)]
pub(crate) fn prefix_items(
    ctx: &mut Context<'_>,
    src: String,
    dialect: &str,
    m: &HttpRouteMatch,
    rules: &[HttpRouteRule],
    rule_index: usize,
    namespace: &str,
    name: &str,
    host: Option<&str>,
) {
    if m.path.match_type != PathMatchType::PathPrefix || m.path.value == "/" {
        return;
    }
    let prefix = &m.path.value;
    let target = route_target(namespace, name, &format!("spec.rules[{rule_index}]"));
    if let Some(glued) = RequestPattern::glued_to_prefix(prefix) {
        let example = glued_example(prefix);
        let after = taken_by(rules, "GET", &example, namespace, name)
            .unwrap_or_else(|| "404 Not Found: no rule matches".to_owned());
        ctx.push(
            Item::new(
                DriftKind::PrefixMatch,
                Mapping::Approximate,
                src.clone(),
                Some(format!("{target}.matches[].path")),
                format!(
                    "{dialect}'s prefix {prefix:?} is a string prefix: it also matched paths that merely start with it ({example}). Gateway API's PathPrefix is element-wise: it matches {prefix} and {prefix}/..., not those."
                ),
            )
            .affects([RequestPattern { host: host.map(str::to_owned), ..glued }])
            .example("GET", host, &example)
            .before_after(format!("matched by the {dialect} route that became {target}"), after),
        );
    } else {
        let base = prefix.trim_end_matches('/');
        if !base.is_empty() {
            ctx.push(
                Item::new(
                    DriftKind::PrefixMatch,
                    Mapping::Approximate,
                    src,
                    Some(format!("{target}.matches[].path")),
                    format!("{dialect}'s prefix {prefix:?} did not match {base} itself; PathPrefix ignores the trailing slash, so {base} now matches this rule."),
                )
                .affects([RequestPattern { host: host.map(str::to_owned), path_exact: Some(base.to_owned()), ..RequestPattern::default() }])
                .example("GET", host, base)
                .before_after("not matched by this route", format!("taken by {target}")),
            );
        }
    }
}

/// The rule a request now takes among `rules` (highest precedence; ties to the first).
pub(crate) fn taken_by(
    rules: &[HttpRouteRule],
    method: &str,
    path: &str,
    namespace: &str,
    name: &str,
) -> Option<String> {
    let none = BTreeMap::new();
    rules
        .iter()
        .enumerate()
        .flat_map(|(i, rule)| rule.matches.iter().map(move |m| (i, m)))
        .filter(|(_, m)| gateway_match(m, method, path, &none))
        .max_by(|(ia, a), (ib, b)| {
            crate::paths::rank(a)
                .cmp(&crate::paths::rank(b))
                .then(ib.cmp(ia))
        })
        .map(|(i, _)| {
            format!(
                "taken by {}",
                route_target(namespace, name, &format!("spec.rules[{i}]"))
            )
        })
}

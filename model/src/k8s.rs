//! The Kubernetes built-in kinds colormesh reads, re-exported from `k8s-openapi` so every crate
//! uses the same types and version.

pub use k8s_openapi::api::apps::v1::Deployment;
pub use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
pub use k8s_openapi::api::discovery::v1::EndpointSlice;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

/// The `k8s-openapi` crate itself, for the less common types (pod specs, ports, ...).
pub use k8s_openapi as openapi;

/// Labels of an object, for `allowedRoutes.namespaces.selector`.
pub type Labels = std::collections::BTreeMap<String, String>;

/// Whether `labels` satisfy a label selector (matchLabels and matchExpressions, as the API server
/// evaluates them). An empty selector selects everything.
pub fn selector_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let match_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions = selector.match_expressions.iter().flatten().all(|rule| {
        let values = rule.values.as_deref().unwrap_or_default();
        let value = labels.get(&rule.key);
        match rule.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    match_labels && expressions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_labels_and_expressions() {
        let selector: LabelSelector = serde_norway::from_str(
            "matchLabels:\n  team: color\nmatchExpressions:\n- key: env\n  operator: In\n  values: [dev, prod]\n",
        )
        .expect("selector");
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(selector_matches(
            &selector,
            &labels(&[("team", "color"), ("env", "dev")])
        ));
        assert!(!selector_matches(
            &selector,
            &labels(&[("team", "color"), ("env", "qa")])
        ));
        assert!(!selector_matches(&selector, &labels(&[("env", "dev")])));
        assert!(selector_matches(&LabelSelector::default(), &labels(&[])));
    }
}

//! The feature registry: every behaviour a scenario can claim to test, by name.
//!
//! Scenarios list the features they exercise (`features: [prefix-rewrite, upstream-group]`), as the
//! Gateway API conformance suite does. The report groups results by feature, and a gateway under
//! test can declare features it does not support, turning those scenarios into "skipped" instead
//! of "failed".

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! features {
    ($($variant:ident => $name:literal, $summary:literal;)*) => {
        /// A named gateway behaviour; see [`Feature::summary`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Feature {
            $($variant,)*
        }

        impl Feature {
            /// Every feature, in registry order.
            pub const ALL: &'static [Feature] = &[$(Feature::$variant,)*];

            /// The kebab-case name used in scenario files and reports.
            pub fn name(self) -> &'static str {
                match self {
                    $(Feature::$variant => $name,)*
                }
            }

            /// One line saying what the feature is.
            pub fn summary(self) -> &'static str {
                match self {
                    $(Feature::$variant => $summary,)*
                }
            }
        }
    };
}

features! {
    KubeDiscovery => "kube-discovery", "Kubernetes services appear as upstreams named <ns>-<svc>-<port>";
    Glooctl => "glooctl", "glooctl create/add/delete/get commands act on the gateway's resources";
    PrefixMatch => "prefix-match", "route by plain string path prefix (/appmesh/color matches /appmesh/colorful)";
    ExactMatch => "exact-match", "route by exact path";
    RegexMatch => "regex-match", "route by a regular expression over the whole path";
    CaseInsensitiveMatch => "case-insensitive-match", "caseSensitive: false on a path matcher";
    HeaderMatch => "header-match", "route by request header value, regex or inverted match";
    QueryParameterMatch => "query-parameter-match", "route by query parameter";
    MethodMatch => "method-match", "route by HTTP method";
    Domains => "domains", "virtual host selection by domain (exact, *.suffix, prefix.*, *)";
    PrefixRewrite => "prefix-rewrite", "replace the matched prefix, keep the rest of the path and the query";
    RegexRewrite => "regex-rewrite", "rewrite the path with a regular expression and substitution";
    HeaderManipulation => "header-manipulation", "add and remove request and response headers";
    SingleDestination => "single-destination", "a route to one upstream";
    MultiDestination => "multi-destination", "a route to weighted upstreams listed inline";
    UpstreamGroup => "upstream-group", "a route to a weighted UpstreamGroup";
    ZeroWeight => "zero-weight", "a destination of weight 0 receives nothing";
    WeightValidation => "weight-validation", "a total weight of 0 is a route error";
    MissingUpstream => "missing-upstream", "a route to a missing upstream is a Warning, an UpstreamGroup with one is Rejected";
    DomainConflict => "domain-conflict", "two virtual services claiming one domain: Rejected";
    Canary => "canary", "weights change while traffic flows, and the new split is served";
    Timeout => "timeout", "a route timeout answers 504 when the upstream is slow";
    Retries => "retries", "retries on 5xx hide a flaky upstream";
    NoRoute => "no-route", "no matching route answers 404";
    NoEndpoints => "no-endpoints", "an upstream without endpoints answers 503";
    DirectResponse => "direct-response", "a route answers with a fixed status and body (directResponseAction)";
    MeshWeightedTargets => "mesh-weighted-targets", "an App Mesh VirtualRouter splits by weightedTargets";
    MeshRoutePriority => "mesh-route-priority", "App Mesh routes are tried by priority";
    // Gateway API features, named as the Gateway API conformance tests (v1.6.1) name them.
    HttpRouteMatching => "HTTPRouteMatching", "an HTTPRoute rule matches by path (PathPrefix is path-element aware)";
    HttpRouteRewritePath => "HTTPRouteRewritePath", "an HTTPRoute URLRewrite filter replaces the matched prefix (ReplacePrefixMatch)";
    HttpRouteWeight => "HTTPRouteWeight", "an HTTPRoute rule splits by backendRef weight";
    MeshHttpRouteWeight => "MeshHTTPRouteWeight", "a GAMMA HTTPRoute (parentRef a Service) splits the mesh's calls by backendRef weight";
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not in the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feature {0:?} (known: see `cargo xtask conformance --list-features`)")]
pub struct UnknownFeature(pub String);

impl FromStr for Feature {
    type Err = UnknownFeature;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Feature::ALL
            .iter()
            .copied()
            .find(|feature| feature.name() == name)
            .ok_or_else(|| UnknownFeature(name.to_owned()))
    }
}

impl Serialize for Feature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Feature {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for feature in Feature::ALL {
            assert_eq!(feature.name().parse::<Feature>(), Ok(*feature));
            assert!(seen.insert(feature.name()), "duplicate {feature}");
            assert!(!feature.summary().is_empty());
        }
    }

    #[test]
    fn unknown_names_are_rejected() {
        assert_eq!(
            "teleport".parse::<Feature>(),
            Err(UnknownFeature("teleport".into()))
        );
    }
}

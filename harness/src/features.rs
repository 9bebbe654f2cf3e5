//! The feature registry: every behaviour a scenario can claim to test, by name.
//!
//! Scenarios list the features they exercise (`features: [prefix-rewrite, upstream-group]`), as the
//! Gateway API conformance suite does. The report groups results by feature, and a gateway under
//! test can declare features it does not support, turning those scenarios into "skipped" instead
//! of "failed".
//!
//! Two kinds of names live here:
//!
//! - colormesh's own, in kebab-case (`prefix-rewrite`), for the Gloo and App Mesh behaviours;
//! - the Gateway API conformance suite's, spelled exactly as upstream v1.6.1 spells them: the
//!   feature names of `pkg/features/*.go` (the string values: `Gateway`, `HTTPRoute`,
//!   `HTTPRoutePathRewrite`; the Go constants add a `Support` prefix, which [`FromStr`] also
//!   accepts) and the test short names of `conformance/tests/*.go` (`HTTPRouteWeight`,
//!   `MeshTrafficSplit`). Some names are both (`HTTPRouteQueryParamMatching`). Each upstream name
//!   carries the conformance profiles it counts in ([`Feature::profiles`]), classified as upstream
//!   does: a feature is core or extended as `conformance/utils/suite/profiles.go` lists it; a test
//!   belongs to a profile when every feature it requires is in that profile, and is extended there
//!   when one of them is not core (`getConformanceProfilesForTest`, `isTestExtended`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Gateway API conformance profile (upstream `ConformanceProfileName`); only the HTTP ones,
/// since colormesh speaks HTTP only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    /// `GATEWAY-HTTP`: core {Gateway, ReferenceGrant, HTTPRoute}.
    GatewayHttp,
    /// `MESH-HTTP`: core {Mesh, HTTPRoute}.
    MeshHttp,
}

impl Profile {
    pub const ALL: &'static [Profile] = &[Profile::GatewayHttp, Profile::MeshHttp];

    /// The upstream name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::GatewayHttp => "GATEWAY-HTTP",
            Profile::MeshHttp => "MESH-HTTP",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name's support level within a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Support {
    Core,
    Extended,
}

/// The Gateway API release channel a feature is in (upstream `FeatureChannel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Standard,
    Experimental,
}

/// What an upstream name is in the Gateway API conformance suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// A `pkg/features` feature name.
    Feature(Channel),
    /// A `conformance/tests` short name.
    Test,
    /// Both a feature name and a test short name (`HTTPRouteMethodMatching`).
    FeatureAndTest(Channel),
}

impl Upstream {
    /// Whether the name is an upstream feature (not only a test).
    pub fn is_feature(self) -> bool {
        matches!(self, Upstream::Feature(_) | Upstream::FeatureAndTest(_))
    }
}

macro_rules! upstream_kind {
    (local) => {
        None
    };
    (feature $channel:ident local) => {
        Some(Upstream::Feature(Channel::$channel))
    };
    (test local) => {
        Some(Upstream::Test)
    };
    (feature_and_test $channel:ident local) => {
        Some(Upstream::FeatureAndTest(Channel::$channel))
    };
}

macro_rules! features {
    ($($variant:ident => $name:literal, $summary:literal
        $(, $kind:ident $($channel:ident)? [$($profile:ident $support:ident),*])?;)*) => {
        /// A named gateway behaviour; see [`Feature::summary`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Feature {
            $($variant,)*
        }

        impl Feature {
            /// Every feature, in registry order.
            pub const ALL: &'static [Feature] = &[$(Feature::$variant,)*];

            /// The name used in scenario files and reports: kebab-case for colormesh's own,
            /// upstream's exact spelling for Gateway API names.
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

            /// What the name is upstream; `None` for colormesh's own names.
            pub fn upstream(self) -> Option<Upstream> {
                match self {
                    $(Feature::$variant => upstream_kind!($($kind $($channel)?)? local),)*
                }
            }

            /// The Gateway API conformance profiles the name counts in, with its level there.
            pub fn profiles(self) -> &'static [(Profile, Support)] {
                match self {
                    $(Feature::$variant => &[$($((Profile::$profile, Support::$support),)*)?],)*
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

    // Gateway API v1.6.1 feature names (`pkg/features`), core first, then extended.
    Gateway => "Gateway", "Gateway resources: listeners, hostnames, attached routes", feature Standard [GatewayHttp Core];
    ReferenceGrant => "ReferenceGrant", "a ReferenceGrant permits a cross-namespace backendRef", feature Standard [GatewayHttp Core];
    HTTPRoute => "HTTPRoute", "HTTPRoute: path/header matches, filters, weighted backendRefs, statuses", feature Standard [GatewayHttp Core, MeshHttp Core];
    Mesh => "Mesh", "GAMMA: an HTTPRoute whose parentRef is a Service routes calls to that Service", feature Standard [MeshHttp Core];
    GatewayPort8080 => "GatewayPort8080", "a Gateway listener on port 8080", feature Standard [GatewayHttp Extended];
    GatewayStaticAddresses => "GatewayStaticAddresses", "spec.addresses requests fixed addresses", feature Standard [GatewayHttp Extended];
    GatewayHTTPListenerIsolation => "GatewayHTTPListenerIsolation", "a request matches only the most specific listener's routes", feature Standard [GatewayHttp Extended];
    GatewayHTTPSListenerDetectMisdirectedRequests => "GatewayHTTPSListenerDetectMisdirectedRequests", "421 for an HTTPS request whose Host differs from its SNI listener", feature Standard [GatewayHttp Extended];
    GatewayInfrastructurePropagation => "GatewayInfrastructurePropagation", "spec.infrastructure labels and annotations reach the generated resources", feature Standard [GatewayHttp Extended];
    GatewayAddressEmpty => "GatewayAddressEmpty", "an empty spec.addresses value gets an address assigned", feature Standard [GatewayHttp Extended];
    GatewayBackendClientCertificate => "GatewayBackendClientCertificate", "a client certificate when the Gateway connects to a backend", feature Standard [GatewayHttp Extended];
    GatewayFrontendClientCertificateValidation => "GatewayFrontendClientCertificateValidation", "client certificate validation on a TLS listener", feature Standard [GatewayHttp Extended];
    GatewayFrontendClientCertificateValidationInsecureFallback => "GatewayFrontendClientCertificateValidationInsecureFallback", "the AllowInsecureFallback client certificate mode", feature Standard [GatewayHttp Extended];
    ListenerSet => "ListenerSet", "ListenerSets add listeners to a Gateway", feature Standard [GatewayHttp Extended];
    BackendTLSPolicy => "BackendTLSPolicy", "TLS from the Gateway to a backend, per BackendTLSPolicy", feature Standard [GatewayHttp Extended];
    BackendTLSPolicySANValidation => "BackendTLSPolicySANValidation", "BackendTLSPolicy subjectAltNames validation", feature Standard [GatewayHttp Extended];
    HTTPRouteDestinationPortMatching => "HTTPRouteDestinationPortMatching", "a backendRef port selects the Service port", feature Experimental [GatewayHttp Extended];
    HTTPRouteBackendRequestHeaderModification => "HTTPRouteBackendRequestHeaderModification", "RequestHeaderModifier on a backendRef", feature Standard [GatewayHttp Extended];
    HTTPRouteQueryParamMatching => "HTTPRouteQueryParamMatching", "match on query parameters (feature and test)", feature_and_test Standard [GatewayHttp Extended];
    HTTPRouteMethodMatching => "HTTPRouteMethodMatching", "match on the HTTP method (feature and test)", feature_and_test Standard [GatewayHttp Extended];
    HTTPRouteResponseHeaderModification => "HTTPRouteResponseHeaderModification", "ResponseHeaderModifier: set, add and remove response headers", feature Standard [GatewayHttp Extended];
    HTTPRoutePortRedirect => "HTTPRoutePortRedirect", "RequestRedirect with a port", feature Standard [GatewayHttp Extended];
    HTTPRouteSchemeRedirect => "HTTPRouteSchemeRedirect", "RequestRedirect with a scheme", feature Standard [GatewayHttp Extended];
    HTTPRoutePathRedirect => "HTTPRoutePathRedirect", "RequestRedirect with ReplaceFullPath or ReplacePrefixMatch", feature Standard [GatewayHttp Extended];
    HTTPRouteHostRewrite => "HTTPRouteHostRewrite", "URLRewrite hostname", feature Standard [GatewayHttp Extended];
    HTTPRoutePathRewrite => "HTTPRoutePathRewrite", "URLRewrite path: ReplacePrefixMatch (element-wise) and ReplaceFullPath", feature Standard [GatewayHttp Extended];
    HTTPRouteRequestMirror => "HTTPRouteRequestMirror", "RequestMirror copies requests to another backend", feature_and_test Standard [GatewayHttp Extended];
    HTTPRouteRequestMultipleMirrors => "HTTPRouteRequestMultipleMirrors", "several RequestMirror filters in one rule", feature_and_test Standard [GatewayHttp Extended];
    HTTPRouteRequestPercentageMirror => "HTTPRouteRequestPercentageMirror", "RequestMirror of a percentage of requests", feature_and_test Standard [GatewayHttp Extended];
    HTTPRouteRequestTimeout => "HTTPRouteRequestTimeout", "timeouts.request: 504 when the whole request takes longer", feature Standard [GatewayHttp Extended];
    HTTPRouteBackendTimeout => "HTTPRouteBackendTimeout", "timeouts.backendRequest: 504 when one backend try takes longer", feature Standard [GatewayHttp Extended];
    HTTPRouteParentRefPort => "HTTPRouteParentRefPort", "parentRef port selects the listener", feature Standard [GatewayHttp Extended];
    HTTPRouteBackendProtocolH2C => "HTTPRouteBackendProtocolH2C", "appProtocol kubernetes.io/h2c backends (feature and test)", feature_and_test Standard [GatewayHttp Extended];
    HTTPRouteBackendProtocolWebSocket => "HTTPRouteBackendProtocolWebSocket", "appProtocol kubernetes.io/ws backends (feature and test)", feature_and_test Standard [GatewayHttp Extended];
    HTTPRouteNamedRouteRule => "HTTPRouteNamedRouteRule", "the name field of a rule", feature Standard [GatewayHttp Extended];
    HTTPRouteCORS => "HTTPRouteCORS", "the CORS filter (feature and test)", feature_and_test Standard [GatewayHttp Extended];
    HTTPRoute303RedirectStatusCode => "HTTPRoute303RedirectStatusCode", "RequestRedirect statusCode 303", feature Standard [GatewayHttp Extended];
    HTTPRoute307RedirectStatusCode => "HTTPRoute307RedirectStatusCode", "RequestRedirect statusCode 307", feature Standard [GatewayHttp Extended];
    HTTPRoute308RedirectStatusCode => "HTTPRoute308RedirectStatusCode", "RequestRedirect statusCode 308", feature Standard [GatewayHttp Extended];
    HTTPRouteRetry => "HTTPRouteRetry", "retry: codes, attempts, backoff (feature and test)", feature_and_test Experimental [GatewayHttp Extended];
    HTTPRouteRetryBackendTimeout => "HTTPRouteRetryBackendTimeout", "retry after a backendRequest timeout", feature Experimental [GatewayHttp Extended];
    HTTPRouteRetryConnectionError => "HTTPRouteRetryConnectionError", "retry after a connection error", feature Experimental [GatewayHttp Extended];
    MeshClusterIPMatching => "MeshClusterIPMatching", "a mesh route applies to calls by ClusterIP too", feature Standard [MeshHttp Extended];
    MeshConsumerRoute => "MeshConsumerRoute", "a route in the caller's namespace applies to that caller only (feature and test)", feature_and_test Standard [MeshHttp Extended];
    MeshHTTPRouteRewritePath => "MeshHTTPRouteRewritePath", "URLRewrite path on a mesh route (feature and test)", feature_and_test Standard [MeshHttp Extended];
    MeshHTTPRouteSchemeRedirect => "MeshHTTPRouteSchemeRedirect", "RequestRedirect scheme on a mesh route (feature and test)", feature_and_test Standard [MeshHttp Extended];
    MeshHTTPRouteRedirectPort => "MeshHTTPRouteRedirectPort", "RequestRedirect port on a mesh route (feature and test)", feature_and_test Standard [MeshHttp Extended];
    MeshHTTPRouteRedirectPath => "MeshHTTPRouteRedirectPath", "RequestRedirect path on a mesh route (feature and test)", feature_and_test Standard [MeshHttp Extended];
    MeshHTTPRouteBackendRequestHeaderModification => "MeshHTTPRouteBackendRequestHeaderModification", "RequestHeaderModifier on a mesh backendRef", feature Standard [MeshHttp Extended];
    MeshHTTPRouteQueryParamMatching => "MeshHTTPRouteQueryParamMatching", "query parameter matches on a mesh route (feature and test)", feature_and_test Standard [MeshHttp Extended];
    MeshHTTPRouteNamedRouteRule => "MeshHTTPRouteNamedRouteRule", "the name field of a mesh route rule", feature Standard [MeshHttp Extended];
    // Gateway API v1.6.1 conformance test short names (`conformance/tests`), where not a feature too.
    HTTPRouteSimpleSameNamespace => "HTTPRouteSimpleSameNamespace", "test: a route in the Gateway's namespace is Accepted and serves /", test [GatewayHttp Core];
    HTTPRouteCrossNamespace => "HTTPRouteCrossNamespace", "test: a route in another namespace attaches to a Gateway that allows it", test [GatewayHttp Core];
    HTTPRouteExactPathMatching => "HTTPRouteExactPathMatching", "test: Exact matches the whole path only", test [GatewayHttp Core];
    HTTPRouteMatching => "HTTPRouteMatching", "test: PathPrefix is element-wise; path and header matches combine", test [GatewayHttp Core];
    HTTPRouteMatchingAcrossRoutes => "HTTPRouteMatchingAcrossRoutes", "test: precedence across all routes of a hostname (exact, longest prefix, method, headers, query, age, name)", test [GatewayHttp Core];
    HTTPRoutePathMatchOrder => "HTTPRoutePathMatchOrder", "test: the most specific path match wins", test [GatewayHttp Core];
    HTTPRouteHeaderMatching => "HTTPRouteHeaderMatching", "test: Exact and RegularExpression header matches, ANDed", test [GatewayHttp Core];
    HTTPRouteHostnameIntersection => "HTTPRouteHostnameIntersection", "test: route hostnames intersect the listener's (wildcards included)", test [GatewayHttp Core];
    HTTPRouteListenerHostnameMatching => "HTTPRouteListenerHostnameMatching", "test: a route attached to one listener answers only for its hostname", test [GatewayHttp Core];
    HTTPRouteWeight => "HTTPRouteWeight", "test: backendRef weights split traffic; weight 0 gets nothing", test [GatewayHttp Core];
    HTTPRouteRequestHeaderModifier => "HTTPRouteRequestHeaderModifier", "test: RequestHeaderModifier set, add, remove", test [GatewayHttp Core];
    HTTPRouteRedirectHostAndStatus => "HTTPRouteRedirectHostAndStatus", "test: RequestRedirect hostname with 301 and 302", test [GatewayHttp Core];
    HTTPRouteInvalidNonExistentBackendRef => "HTTPRouteInvalidNonExistentBackendRef", "test: a missing backend answers 500 and ResolvedRefs is False with BackendNotFound", test [GatewayHttp Core];
    HTTPRouteInvalidBackendRefUnknownKind => "HTTPRouteInvalidBackendRefUnknownKind", "test: a backendRef of an unknown kind answers 500, ResolvedRefs InvalidKind", test [GatewayHttp Core];
    HTTPRouteInvalidCrossNamespaceBackendRef => "HTTPRouteInvalidCrossNamespaceBackendRef", "test: a cross-namespace backendRef without a ReferenceGrant answers 500, ResolvedRefs RefNotPermitted", test [GatewayHttp Core];
    HTTPRouteReferenceGrant => "HTTPRouteReferenceGrant", "test: a ReferenceGrant permits the cross-namespace backendRef", test [GatewayHttp Core];
    HTTPRoutePartiallyInvalidViaInvalidReferenceGrant => "HTTPRoutePartiallyInvalidViaInvalidReferenceGrant", "test: the rule with an unpermitted backendRef answers 500, the others serve", test [GatewayHttp Core];
    HTTPRouteInvalidReferenceGrant => "HTTPRouteInvalidReferenceGrant", "test: a ReferenceGrant for another target does not permit the reference", test [GatewayHttp Core];
    HTTPRouteNoBackendRefs => "HTTPRouteNoBackendRefs", "test: a rule without backendRefs answers 500", test [GatewayHttp Core];
    HTTPRouteResponseHeaderModifier => "HTTPRouteResponseHeaderModifier", "test: ResponseHeaderModifier set, add, remove", test [GatewayHttp Extended];
    HTTPRouteRewritePath => "HTTPRouteRewritePath", "test: URLRewrite ReplacePrefixMatch and ReplaceFullPath", test [GatewayHttp Extended];
    HTTPRouteRewriteHost => "HTTPRouteRewriteHost", "test: URLRewrite hostname", test [GatewayHttp Extended];
    HTTPRouteRedirectScheme => "HTTPRouteRedirectScheme", "test: RequestRedirect scheme", test [GatewayHttp Extended];
    HTTPRouteRedirectPort => "HTTPRouteRedirectPort", "test: RequestRedirect port", test [GatewayHttp Extended];
    HTTPRouteRedirectPath => "HTTPRouteRedirectPath", "test: RequestRedirect ReplaceFullPath and ReplacePrefixMatch", test [GatewayHttp Extended];
    HTTPRouteTimeoutRequest => "HTTPRouteTimeoutRequest", "test: timeouts.request answers 504", test [GatewayHttp Extended];
    HTTPRouteTimeoutBackendRequest => "HTTPRouteTimeoutBackendRequest", "test: timeouts.backendRequest answers 504", test [GatewayHttp Extended];
    MeshBasic => "MeshBasic", "test: mesh workloads reach each other through their sidecars", test [MeshHttp Core];
    MeshHTTPRouteSimpleSameNamespace => "MeshHTTPRouteSimpleSameNamespace", "test: an HTTPRoute with a Service parentRef routes the Service's calls", test [MeshHttp Core];
    MeshHTTPRouteMatching => "MeshHTTPRouteMatching", "test: path and header matches on a mesh route", test [MeshHttp Core];
    MeshHTTPRouteWeight => "MeshHTTPRouteWeight", "test: weighted backendRefs on a mesh route split calls", test [MeshHttp Core];
    MeshTrafficSplit => "MeshTrafficSplit", "test: a mesh route splits a Service's calls by path to other Services", test [MeshHttp Core];
    MeshHTTPRouteRequestHeaderModifier => "MeshHTTPRouteRequestHeaderModifier", "test: RequestHeaderModifier on a mesh route", test [MeshHttp Core];
    MeshHTTPRouteRedirectHostAndStatus => "MeshHTTPRouteRedirectHostAndStatus", "test: RequestRedirect hostname and status on a mesh route", test [MeshHttp Core];
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
        let find = |name: &str| Feature::ALL.iter().copied().find(|f| f.name() == name);
        // Upstream's Go constants spell a feature `SupportHTTPRoute...`: accept that too.
        find(name)
            .or_else(|| {
                name.strip_prefix("Support")
                    .and_then(find)
                    .filter(|f| f.upstream().is_some_and(Upstream::is_feature))
            })
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
    fn upstream_names_carry_profiles_and_local_names_none() {
        for feature in Feature::ALL {
            match feature.upstream() {
                None => assert!(feature.profiles().is_empty(), "{feature}"),
                Some(_) => assert!(!feature.profiles().is_empty(), "{feature} has no profile"),
            }
        }
        let core_features = |profile: Profile| -> Vec<&str> {
            Feature::ALL
                .iter()
                .filter(|f| f.upstream().is_some_and(Upstream::is_feature))
                .filter(|f| f.profiles().contains(&(profile, Support::Core)))
                .map(|f| f.name())
                .collect()
        };
        // profiles.go, v1.6.1.
        assert_eq!(
            core_features(Profile::GatewayHttp),
            ["Gateway", "ReferenceGrant", "HTTPRoute"]
        );
        assert_eq!(core_features(Profile::MeshHttp), ["HTTPRoute", "Mesh"]);
        assert_eq!(
            Feature::HTTPRouteWeight.profiles(),
            [(Profile::GatewayHttp, Support::Core)]
        );
        assert_eq!(
            Feature::HTTPRouteRetry.upstream(),
            Some(Upstream::FeatureAndTest(Channel::Experimental))
        );
        assert_eq!(Feature::PrefixMatch.upstream(), None);
    }

    #[test]
    fn go_constant_spellings_parse_for_features_only() {
        assert_eq!("SupportHTTPRoute".parse(), Ok(Feature::HTTPRoute));
        assert_eq!("SupportGateway".parse(), Ok(Feature::Gateway));
        assert_eq!(
            "SupportHTTPRoutePathRewrite".parse(),
            Ok(Feature::HTTPRoutePathRewrite)
        );
        assert!("SupportHTTPRouteWeight".parse::<Feature>().is_err());
        assert!("Supportprefix-match".parse::<Feature>().is_err());
    }

    #[test]
    fn unknown_names_are_rejected() {
        assert_eq!(
            "teleport".parse::<Feature>(),
            Err(UnknownFeature("teleport".into()))
        );
    }
}

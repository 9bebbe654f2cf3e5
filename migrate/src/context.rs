//! What the Gloo and App Mesh conversions share: the input indexed, the drift items being
//! written, the Services backends resolve to, and the ReferenceGrants cross-namespace
//! references need.

use std::collections::{BTreeMap, BTreeSet};

use model::gateway_api::{HttpBackendRef, HttpRouteMatch};
use model::k8s::Service;
use model::{Loaded, ResourceSet};

use crate::drift::{DriftItem, DriftKind, ExampleRequest, Mapping, RequestPattern};
use crate::input::Input;
use crate::options::Options;

/// A Service port a backendRef points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ServicePort {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) port: u16,
}

impl ServicePort {
    /// The backendRef from a route in `route_namespace`, with a weight.
    pub(crate) fn backend_ref(&self, route_namespace: &str, weight: u32) -> HttpBackendRef {
        HttpBackendRef {
            group: String::new(),
            kind: "Service".into(),
            name: self.name.clone(),
            namespace: (self.namespace != route_namespace).then(|| self.namespace.clone()),
            port: Some(self.port),
            weight,
            filters: Vec::new(),
        }
    }
}

impl std::fmt::Display for ServicePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Service {}/{} port {}",
            self.namespace, self.name, self.port
        )
    }
}

/// One drift item in the making.
#[derive(Debug, Clone)]
pub(crate) struct Item(pub(crate) DriftItem);

impl Item {
    pub(crate) fn new(
        kind: DriftKind,
        mapping: Mapping,
        source: String,
        target: Option<String>,
        description: impl Into<String>,
    ) -> Self {
        Self(DriftItem {
            id: String::new(),
            kind,
            mapping,
            source,
            target,
            description: description.into(),
            affects: Vec::new(),
            examples: Vec::new(),
            before: None,
            after: None,
        })
    }

    pub(crate) fn affects(mut self, patterns: impl IntoIterator<Item = RequestPattern>) -> Self {
        self.0.affects.extend(patterns);
        self
    }

    pub(crate) fn example(mut self, method: &str, host: Option<&str>, path: &str) -> Self {
        self.0.examples.push(ExampleRequest {
            method: method.to_owned(),
            host: host.map(str::to_owned),
            path: path.to_owned(),
            headers: BTreeMap::new(),
        });
        self
    }

    pub(crate) fn before_after(
        mut self,
        before: impl Into<String>,
        after: impl Into<String>,
    ) -> Self {
        self.0.before = Some(before.into());
        self.0.after = Some(after.into());
        self
    }
}

/// The state of one migration.
#[derive(Debug)]
pub(crate) struct Context<'a> {
    pub(crate) input: &'a Input,
    pub(crate) set: ResourceSet,
    pub(crate) options: &'a Options,
    pub(crate) items: Vec<Item>,
    /// (Service namespace, route namespace) → Service names referred to across namespaces.
    pub(crate) grants: BTreeMap<(String, String), BTreeSet<String>>,
    /// Namespaces that hold a GAMMA route or a meshed workload.
    pub(crate) mesh_namespaces: BTreeSet<String>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(input: &'a Input, options: &'a Options) -> Self {
        Self {
            input,
            set: input.set(),
            options,
            items: Vec::new(),
            grants: BTreeMap::new(),
            mesh_namespaces: BTreeSet::new(),
        }
    }

    pub(crate) fn push(&mut self, item: Item) {
        self.items.push(item);
    }

    /// The input's Service `namespace/name`.
    pub(crate) fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.set.services().map(|(_, s)| s).find(|s| {
            s.metadata.name.as_deref() == Some(name)
                && s.metadata.namespace.as_deref().unwrap_or("default") == namespace
        })
    }

    /// Whether the input's Service has this port.
    pub(crate) fn service_has_port(&self, namespace: &str, name: &str, port: u16) -> bool {
        self.service(namespace, name).is_some_and(|s| {
            s.spec
                .as_ref()
                .and_then(|spec| spec.ports.as_ref())
                .is_some_and(|ports| ports.iter().any(|p| p.port == i32::from(port)))
        })
    }

    /// Records a backendRef from a route; a cross-namespace one needs a ReferenceGrant.
    pub(crate) fn refer(&mut self, route_namespace: &str, service: &ServicePort) {
        if service.namespace != route_namespace {
            self.grants
                .entry((service.namespace.clone(), route_namespace.to_owned()))
                .or_default()
                .insert(service.name.clone());
        }
    }
}

/// `file: Kind namespace/name field`, the way drift items name a source construct.
pub(crate) fn source(loaded: &Loaded, field: &str) -> String {
    let key = loaded.resource.key();
    if field.is_empty() {
        format!("{}: {key}", loaded.origin.file.display())
    } else {
        format!("{}: {key} {field}", loaded.origin.file.display())
    }
}

/// `HTTPRoute namespace/name field`.
pub(crate) fn route_target(namespace: &str, name: &str, field: &str) -> String {
    if field.is_empty() {
        format!("HTTPRoute {namespace}/{name}")
    } else {
        format!("HTTPRoute {namespace}/{name} {field}")
    }
}

/// The requests a Gateway API match selects, as patterns (exact header values kept; regex
/// conditions and query parameters left out, so the patterns may hold more).
pub(crate) fn match_patterns(m: &HttpRouteMatch, host: Option<&str>) -> Vec<RequestPattern> {
    use model::gateway_api::{PathMatchType, ValueMatchType};
    let paths = match m.path.match_type {
        PathMatchType::Exact => vec![RequestPattern {
            path_exact: Some(m.path.value.clone()),
            ..RequestPattern::default()
        }],
        PathMatchType::PathPrefix => crate::paths::element_prefix_patterns(&m.path.value),
        PathMatchType::RegularExpression => vec![RequestPattern::default()],
    };
    let headers: BTreeMap<String, String> = m
        .headers
        .iter()
        .filter(|h| h.match_type == ValueMatchType::Exact)
        .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
        .collect();
    paths
        .into_iter()
        .map(|p| RequestPattern {
            method: m.method.map(|x| x.as_str().to_owned()),
            host: host.map(str::to_owned),
            headers: headers.clone(),
            ..p
        })
        .collect()
}

/// Gives each item its id, `<kind>:<source>`, made unique with `#2`, `#3`, ...
pub(crate) fn finish_items(items: Vec<Item>) -> Vec<DriftItem> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    items
        .into_iter()
        .map(|Item(mut item)| {
            let kind = serde_json::to_value(item.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let base = format!("{kind}:{}", item.source);
            let count = seen.entry(base.clone()).or_insert(0);
            *count += 1;
            item.id = if *count == 1 {
                base
            } else {
                format!("{base}#{count}")
            };
            item
        })
        .collect()
}

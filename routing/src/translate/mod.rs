//! The translator: from the resource model (`model::ResourceSet`) to the runtime
//! [`RouteTable`](crate::table::RouteTable) plus one [`ResourceStatus`] per resource, for either role.
//! One module per flavour; a new one (Gateway API) is one more module beside them.
//!
//! - Ingress ([`Role::ingress()`]): Gloo Edge 1.x semantics, as Gloo's translator configures Envoy
//!   (see `gloo.rs`).
//!   Gateway API Gateways of colormesh's classes and their HTTPRoutes are served beside
//!   (see `gateway_api/ingress.rs`).
//! - Sidecar ([`Role::Sidecar`]): the App Mesh controller's v1beta2 semantics for the Envoy beside
//!   one VirtualNode (see `appmesh.rs`).
//! - Mesh sidecar ([`Role::MeshSidecar`]): GAMMA, HTTPRoutes whose parent is a Service (see
//!   `gateway_api/mesh.rs`).
//!
//! Every resource is validated on its own and against the resources it references. A resource
//! whose current version is rejected never replaces its last accepted version: when the caller
//! passes the last accepted set, that version keeps being served (and the status says so); a
//! resource that was never accepted is left out. The caller keeps that history between
//! translations ([`Translated::accepted`]); gateway-proxy's `DirSource` and Kubernetes source do.

mod appmesh;
mod endpoints;
mod gateway_api;
mod gloo;
mod output;
mod report;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use model::{Loaded, ResourceKey, ResourceKind, ResourceSet};

use crate::table::{Fallback, RouteTable, TableError, VirtualHost};

pub use output::{GatewayApiStatus, GatewayName, ResourceStatus, Role, Translation};

use report::Report;

/// Translates `resources` for `role`.
///
/// `last_accepted` holds the last accepted version of each resource (what a previous translation
/// accepted); a resource whose current version is rejected is served from there, if it is there.
pub fn translate(
    resources: &ResourceSet,
    role: &Role,
    last_accepted: Option<&ResourceSet>,
) -> Translation {
    translate_resources(resources, role, last_accepted, &BTreeMap::new()).translation
}

/// A translation plus the versions it accepted, for the next translation's `last_accepted`.
#[derive(Debug)]
pub struct Translated {
    /// The table and statuses to serve.
    pub translation: Translation,
    /// For every resource in the input: the version in effect (the current one unless it was
    /// rejected, then the last accepted one); rejected resources never accepted are absent.
    pub accepted: ResourceSet,
}

/// [`translate`] with rejections decided before translation: `preset_rejections` maps resources
/// whose latest version could not even be read (the caller substituted an older version) to the
/// reasons, which are reported as `Rejected` while the substituted version is served.
pub fn translate_resources(
    resources: &ResourceSet,
    role: &Role,
    last_accepted: Option<&ResourceSet>,
    preset_rejections: &BTreeMap<ResourceKey, Vec<String>>,
) -> Translated {
    let empty = ResourceSet::new();
    let history = History {
        last_accepted: last_accepted.unwrap_or(&empty),
    };
    let mut report = Report::default();
    let mut effective = Effective::default();
    let (virtual_hosts, fallback) = match role {
        Role::Ingress { gateway } => {
            let mut virtual_hosts =
                gloo::translate(resources, &history, &mut report, &mut effective);
            // Gloo and the Gateway API side by side: a hostname a Gloo VirtualService serves
            // stays Gloo's, and the Gateway API statuses say so.
            let claimed: BTreeMap<String, String> = virtual_hosts
                .iter()
                .flat_map(|virtual_host| {
                    virtual_host
                        .domains
                        .iter()
                        .map(|domain| (domain.to_ascii_lowercase(), virtual_host.name.clone()))
                })
                .collect();
            virtual_hosts.extend(gateway_api::translate_ingress(
                resources,
                &history,
                gateway.as_ref(),
                &claimed,
                &mut report,
                &mut effective,
            ));
            (virtual_hosts, Fallback::NotFound)
        }
        Role::Sidecar { node, namespace } => appmesh::translate(
            resources,
            &history,
            node,
            namespace,
            &mut report,
            &mut effective,
        ),
        Role::MeshSidecar { namespace } => {
            gateway_api::translate_mesh(resources, &history, namespace, &mut report, &mut effective)
        }
    };
    // The Kubernetes resources the translators read are reported too (they are never rejected),
    // so that a change to one of them is visible in `/status` by its resourceVersion.
    for (key, loaded) in resources {
        if matches!(
            key.kind,
            ResourceKind::Service
                | ResourceKind::EndpointSlice
                | ResourceKind::Namespace
                | ResourceKind::ReferenceGrant
        ) {
            report.seen(key, loaded);
        }
    }
    let table = build_table(virtual_hosts, fallback, &mut report);
    let accepted = effective.accepted_set(resources);
    Translated {
        translation: Translation {
            table,
            statuses: report.finish(preset_rejections),
        },
        accepted,
    }
}

/// The last accepted versions, looked up when a current version is rejected.
#[derive(Debug, Clone, Copy)]
pub(crate) struct History<'a> {
    last_accepted: &'a ResourceSet,
}

impl<'a> History<'a> {
    /// The last accepted version of `key`. It may be the very version being judged: a resource
    /// rejected only because another one now conflicts with it keeps being served.
    pub(crate) fn previous(&self, key: &ResourceKey) -> Option<&'a Loaded> {
        self.last_accepted.get(key)
    }
}

/// Which version of each validated resource is in effect after this translation.
#[derive(Debug, Default)]
pub(crate) struct Effective {
    /// `Some(version)` served, `None` rejected and not served. Resources not listed (kinds the
    /// role does not validate) are in effect as they are.
    versions: BTreeMap<ResourceKey, Option<Loaded>>,
}

impl Effective {
    pub(crate) fn set(&mut self, key: &ResourceKey, version: Option<&Loaded>) {
        self.versions.insert(key.clone(), version.cloned());
    }

    fn accepted_set(mut self, resources: &ResourceSet) -> ResourceSet {
        let mut accepted = ResourceSet::new();
        for (key, loaded) in resources {
            match self.versions.remove(key) {
                Some(Some(version)) => {
                    accepted.insert(version);
                }
                Some(None) => {}
                None => {
                    accepted.insert(loaded.clone());
                }
            }
        }
        accepted
    }
}

/// Builds the table. The translators reject conflicting and malformed domains before this point,
/// so a failure here is a translator bug: it is reported and the proxy serves only the fallback
/// rather than a half-built table.
fn build_table(
    virtual_hosts: Vec<VirtualHost>,
    fallback: Fallback,
    report: &mut Report,
) -> RouteTable {
    match RouteTable::new(virtual_hosts, fallback.clone()) {
        Ok(table) => table,
        Err(error) => {
            tracing::error!(%error, "the route table rejected virtual hosts the translator accepted");
            report.table_error(&error);
            RouteTable::empty(fallback)
        }
    }
}

/// Validates the current version of a resource with `compile`; when that finds errors, the
/// resource is reported Rejected and its last accepted version (if any, and if it still
/// compiles) is served instead.
pub(crate) fn resolve<T>(
    key: &ResourceKey,
    current: &Loaded,
    history: &History<'_>,
    report: &mut Report,
    effective: &mut Effective,
    mut compile: impl FnMut(&Loaded, &mut Findings) -> Option<T>,
) -> Option<T> {
    report.seen(key, current);
    let mut findings = Findings::default();
    let compiled = compile(current, &mut findings);
    report.warnings(key, current, &findings.warnings);
    if findings.is_ok()
        && let Some(compiled) = compiled
    {
        effective.set(key, Some(current));
        return Some(compiled);
    }
    report.errors(key, current, &findings.errors);
    fall_back(key, history, report, effective, compile)
}

/// Serves the last accepted version of a resource whose current version was just rejected.
pub(crate) fn fall_back<T>(
    key: &ResourceKey,
    history: &History<'_>,
    report: &mut Report,
    effective: &mut Effective,
    mut compile: impl FnMut(&Loaded, &mut Findings) -> Option<T>,
) -> Option<T> {
    if let Some(previous) = history.previous(key) {
        let mut findings = Findings::default();
        if let Some(compiled) = compile(previous, &mut findings)
            && findings.is_ok()
        {
            report.served_previous(key, previous);
            effective.set(key, Some(previous));
            return Some(compiled);
        }
    }
    report.not_served(key);
    effective.set(key, None);
    None
}

/// A field path under a resource, for status reasons: `spec.virtualHost.routes[1].matchers[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    pub(crate) fn new(root: &str) -> Self {
        Self(root.to_owned())
    }

    pub(crate) fn field(&self, name: &str) -> Self {
        Self(format!("{}.{name}", self.0))
    }

    pub(crate) fn index(&self, index: usize) -> Self {
        Self(format!("{}[{index}]", self.0))
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One thing wrong with a resource: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) field: FieldPath,
    pub(crate) message: String,
}

impl Problem {
    pub(crate) fn new(field: &FieldPath, message: impl Into<String>) -> Self {
        Self {
            field: field.clone(),
            message: message.into(),
        }
    }
}

/// What validating one resource version found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub(crate) errors: Vec<Problem>,
    pub(crate) warnings: Vec<Problem>,
}

impl Findings {
    pub(crate) fn error(&mut self, field: &FieldPath, message: impl Into<String>) {
        self.errors.push(Problem::new(field, message));
    }

    pub(crate) fn warning(&mut self, field: &FieldPath, message: impl Into<String>) {
        self.warnings.push(Problem::new(field, message));
    }

    pub(crate) fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The status reason for a regex that does not compile, shared by both roles' translators.
fn invalid_regex(error: &TableError) -> String {
    match error {
        TableError::InvalidRegex { pattern, source } => {
            format!("invalid regex {pattern:?}: {source}")
        }
        other => other.to_string(),
    }
}

/// `(namespace, name)` of a resource, the key both roles index their lookups by.
type NamespacedName = (String, String);

fn namespaced_name(key: &model::ResourceKey) -> NamespacedName {
    (
        key.namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        key.name.clone(),
    )
}

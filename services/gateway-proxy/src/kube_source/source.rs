//! [`KubeSource`]: the [`ConfigSource`] over the watchers' stores.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use kube::core::DynamicObject;
use model::{Loaded, ResourceKey, ResourceSet};
use routing::{Role, translate_resources};

use super::kinds::WatchedKind;
use super::watch::Watched;
use crate::reload::{ConfigSource, LoadOutcome};
use crate::snapshot::FileLoadFailure;

/// Serves what the API server holds: every load reads the watchers' stores, decodes each object
/// into the model (through the same loader as config files, so errors name the resource and the
/// field) and translates the set for one role.
///
/// The history rules are [`crate::DirSource`]'s: an object whose latest version does not decode
/// keeps being served in its last version that did (and is reported Rejected with the decode
/// error); a resource whose new version the translator rejects is served in its last accepted
/// version. Built by [`super::start`].
pub struct KubeSource {
    role: Role,
    watched: Vec<Watched>,
    last_accepted: ResourceSet,
    last_good: BTreeMap<ResourceKey, Loaded>,
    /// Decoded objects by key, reused while the object's resourceVersion is unchanged.
    decoded: HashMap<ResourceKey, Decoded>,
}

#[derive(Debug)]
struct Decoded {
    resource_version: Option<String>,
    result: Result<Loaded, model::LoadError>,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("role", &self.role)
            .field("watched", &self.watched)
            .field("last_good", &self.last_good.len())
            .finish_non_exhaustive()
    }
}

impl KubeSource {
    pub(crate) fn new(role: Role, watched: Vec<Watched>) -> Self {
        Self {
            role,
            watched,
            last_accepted: ResourceSet::new(),
            last_good: BTreeMap::new(),
            decoded: HashMap::new(),
        }
    }

    /// The role translated for.
    pub fn role(&self) -> &Role {
        &self.role
    }
}

impl ConfigSource for KubeSource {
    fn load(&mut self) -> LoadOutcome {
        let mut resources = ResourceSet::new();
        let mut preset_rejections: BTreeMap<ResourceKey, Vec<String>> = BTreeMap::new();
        let mut load_errors = Vec::new();
        let mut present = BTreeSet::new();
        for watched in &self.watched {
            for object in watched.store.state() {
                let key = watched.kind.key(&object);
                present.insert(key.clone());
                let resource_version = object.metadata.resource_version.clone();
                let decoded = match self.decoded.get(&key) {
                    Some(cached) if cached.resource_version == resource_version => cached,
                    _ => {
                        let result = decode(&watched.kind, &object);
                        self.decoded.insert(
                            key.clone(),
                            Decoded {
                                resource_version,
                                result,
                            },
                        );
                        &self.decoded[&key]
                    }
                };
                match &decoded.result {
                    Ok(loaded) => {
                        self.last_good.insert(key, loaded.clone());
                        resources.insert(loaded.clone());
                    }
                    Err(error) => {
                        let consequence = match self.last_good.get(&key) {
                            Some(previous) => {
                                resources.insert(previous.clone());
                                "the last version that could be read is still served"
                            }
                            None => "no version of it could be read, so it is not served",
                        };
                        preset_rejections
                            .entry(key)
                            .or_default()
                            .push(format!("{error}; {consequence}"));
                        load_errors.push(FileLoadFailure {
                            file: error.file.clone(),
                            line: Some(error.line),
                            message: format!("{}; {consequence}", describe(error)),
                        });
                    }
                }
            }
        }
        // Deleted objects take their history with them.
        self.decoded.retain(|key, _| present.contains(key));
        self.last_good.retain(|key, _| present.contains(key));

        let outcome = translate_resources(
            &resources,
            &self.role,
            Some(&self.last_accepted),
            &preset_rejections,
        );
        self.last_accepted = outcome.accepted;
        for error in &load_errors {
            tracing::warn!(object = %error.file.display(), message = %error.message, "API object error");
        }
        LoadOutcome {
            translation: outcome.translation,
            load_errors,
        }
    }
}

/// `Kind namespace/name: field: cause`, what a load error says beside its file.
fn describe(error: &model::LoadError) -> String {
    let mut message = String::new();
    for part in [&error.resource, &error.field].into_iter().flatten() {
        message.push_str(part);
        message.push_str(": ");
    }
    message.push_str(&error.cause);
    message
}

/// The pseudo file an object is reported from: `kubernetes://VirtualService/gloo-system/x`
/// (`kubernetes://Mesh/x` for a cluster-scoped kind).
pub(crate) fn origin_of(kind: &WatchedKind, object: &DynamicObject) -> PathBuf {
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let kind_name = &kind.api.kind;
    match (&object.metadata.namespace, kind.namespaced) {
        (Some(namespace), true) => format!("kubernetes://{kind_name}/{namespace}/{name}").into(),
        _ => format!("kubernetes://{kind_name}/{name}").into(),
    }
}

/// Decodes an API object into the model with the config-file loader
/// ([`model::decode_api_object`]), so both sources report errors and ignored fields the same way.
pub(crate) fn decode(
    kind: &WatchedKind,
    object: &DynamicObject,
) -> Result<Loaded, model::LoadError> {
    let origin = origin_of(kind, object);
    let named = |error: model::LoadError| model::LoadError {
        resource: error
            .resource
            .or_else(|| Some(kind.key(object).to_string())),
        ..error
    };
    let value = serde_json::to_value(object).map_err(|error| {
        named(model::LoadError {
            file: origin.clone(),
            line: 1,
            column: None,
            resource: None,
            field: None,
            cause: format!("cannot re-encode the object: {error}"),
        })
    })?;
    model::decode_api_object(value, &kind.api.api_version, &kind.api.kind, &origin).map_err(named)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use std::path::Path;

    use super::*;
    use crate::kube_source::kinds::for_role;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).expect("a valid object")
    }

    fn virtual_service(routes: Value) -> DynamicObject {
        // As in a list response: no apiVersion/kind; status and managedFields present.
        object(json!({
            "metadata": {
                "name": "colorgateway",
                "namespace": "gloo-system",
                "resourceVersion": "7",
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {"virtualHost": {"domains": ["*"], "routes": routes}},
            "status": {"statuses": {"gloo-system": {"state": 1, "reportedBy": "gloo"}}},
        }))
    }

    #[test]
    fn objects_decode_with_a_pseudo_file_origin() {
        let kinds = for_role(&Role::ingress());
        let loaded = decode(
            &kinds[0],
            &virtual_service(json!([{
                "matchers": [{"prefix": "/appmesh/color"}],
                "routeAction": {"single": {"upstream": {"name": "u", "namespace": "gloo-system"}}},
            }])),
        )
        .expect("decodes");
        assert_eq!(
            loaded.origin.to_string(),
            "kubernetes://VirtualService/gloo-system/colorgateway:1"
        );
        assert_eq!(
            loaded.resource.key().to_string(),
            "VirtualService gloo-system/colorgateway"
        );
        assert_eq!(
            loaded.resource.metadata().resource_version.as_deref(),
            Some("7")
        );
        assert!(loaded.resource.metadata().managed_fields.is_none());
        assert!(
            loaded.ignored_fields.is_empty(),
            "{:?}",
            loaded.ignored_fields
        );
        let model::Resource::GlooVirtualService(service) = &loaded.resource else {
            panic!("{:?}", loaded.resource)
        };
        assert!(
            service.status.is_none(),
            "a status in another shape is not read"
        );
    }

    #[test]
    fn a_bad_object_is_an_error_naming_resource_and_field() {
        let kinds = for_role(&Role::ingress());
        let error = decode(
            &kinds[0],
            &virtual_service(json!([{"matchers": [{"prefix": ["/x"]}], "routeAction": {}}])),
        )
        .expect_err("a sequence is not a prefix");
        assert_eq!(
            error.file,
            Path::new("kubernetes://VirtualService/gloo-system/colorgateway")
        );
        assert_eq!(error.line, 1);
        assert_eq!(error.column, None);
        assert_eq!(
            error.resource.as_deref(),
            Some("VirtualService gloo-system/colorgateway")
        );
        assert_eq!(
            error.field.as_deref(),
            Some("spec.virtualHost.routes[0].matchers[0].prefix")
        );
        assert_eq!(
            describe(&error),
            "VirtualService gloo-system/colorgateway: spec.virtualHost.routes[0].matchers[0].prefix: invalid type: sequence, expected a string"
        );
    }

    #[test]
    fn cluster_scoped_objects_have_no_namespace_in_their_origin() {
        let kinds = for_role(&Role::Sidecar {
            node: "n".into(),
            namespace: "ns".into(),
        });
        let mesh = object(json!({
            "apiVersion": "appmesh.k8s.aws/v1beta2",
            "kind": "Mesh",
            "metadata": {"name": "color-mesh"},
            "spec": {"namespaceSelector": {"matchLabels": {"mesh": "color-mesh"}}},
        }));
        let loaded = decode(&kinds[0], &mesh).expect("decodes");
        assert_eq!(loaded.origin.to_string(), "kubernetes://Mesh/color-mesh:1");
        assert_eq!(loaded.resource.key().to_string(), "Mesh color-mesh");
    }

    #[test]
    fn strings_that_look_like_other_yaml_types_stay_strings() {
        let kinds = for_role(&Role::ingress());
        let service = object(json!({
            "metadata": {"name": "s", "namespace": "n", "labels": {"on": "yes", "n": "0x10"}},
            "spec": {"ports": [{"name": "no", "port": 80}]},
        }));
        let loaded = decode(
            crate::kube_source::kinds::find(&kinds, model::ResourceKind::Service),
            &service,
        )
        .expect("decodes");
        let labels = loaded
            .resource
            .metadata()
            .labels
            .clone()
            .unwrap_or_default();
        assert_eq!(labels["on"], "yes");
        assert_eq!(labels["n"], "0x10");
    }
}
